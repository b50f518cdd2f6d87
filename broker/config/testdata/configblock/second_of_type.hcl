kms "aead" {
  purpose = ["root"]
  key     = "{{decrypt(Y3Q6Zm9v)}}"
}

kms "aead" {
  purpose = ["recovery", "config"]
  key_id  = "env://KMSBROKER_TEST_CONFIG_KEY_ID"
}
