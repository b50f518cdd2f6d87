kms "aead" {
  purpose = ["root", "recovery", "root"]
}
