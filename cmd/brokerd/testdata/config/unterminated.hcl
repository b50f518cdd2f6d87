kms "aead" {
  key = "{{encrypt(@KEY@"
}
