kms "transit" {
  purpose = ["root"]
  token   = "env://"
}
