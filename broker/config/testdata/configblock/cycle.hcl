kms "awskms" {
  purpose = ["root"]
}

kms "transit" {
  purpose = ["config"]
  address = "https://vault.internal:8200"
  token   = "{{decrypt(Y3Q6dG9rZW4=)}}"
  # {{encrypt(in a comment)}}
}
