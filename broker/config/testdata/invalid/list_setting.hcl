kms "aead" {
  purpose = ["root"]
  key     = ["s3cr3t-value"]
}
