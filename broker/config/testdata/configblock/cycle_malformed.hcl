kms "transit" {
  purpose = ["config"]
  token   = "{{decrypt(Y3Q6dG9rZW4="
}
