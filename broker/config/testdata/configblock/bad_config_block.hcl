kms "aead" {
  purpose = ["config"]
  timeout = "soon"
}
