kms "aead" {
  purpose = ["root"]
}

kms "awskmss" {
  purpose = ["recovery"]
}
