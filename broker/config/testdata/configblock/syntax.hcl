kms "aead" {
  purpose = ["config"]
  key     = {{decrypt(Y3Q6Zm9v)}}
}
