kms "awskms" {
  purpose    = ["root"]
  kms_key_id = "alias/broker-root"
}

kms "aead" {
  purpose = ["recovery", "root"]
  key_id  = "local-1"
}
