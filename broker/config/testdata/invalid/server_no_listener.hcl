kms "aead" {
  purpose = ["root"]
}
