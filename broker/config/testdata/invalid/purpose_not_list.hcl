kms "aead" {
  purpose = "root"
}
