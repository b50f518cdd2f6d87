kms "aead" {
  purpose = ["root"]
  key = {
    value = "s3cr3t-value"
  }
}
