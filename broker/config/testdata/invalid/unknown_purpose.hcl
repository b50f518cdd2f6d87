kms "aead" {
  key_id  = "local-1"
  purpose = ["rot"]
}
