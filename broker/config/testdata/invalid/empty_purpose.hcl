kms "aead" {
  purpose = []
}
