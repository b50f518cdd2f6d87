kms "aead" {
  purpose = ["root"]
  key_id  = null
}
