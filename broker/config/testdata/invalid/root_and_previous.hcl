kms "aead" {
  purpose = ["root", "previous-root"]
}
