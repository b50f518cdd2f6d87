kms "transit" {
  purpose = ["root"]
  token   = "file://testdata"
}
