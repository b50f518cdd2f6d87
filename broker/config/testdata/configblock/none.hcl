kms "aead" {
  purpose = ["root"]
  key     = "{{decrypt(Y3Q6Zm9v)}}"
}
