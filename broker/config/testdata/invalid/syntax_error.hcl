kms "aead" {
  purpose = ["root"
}
