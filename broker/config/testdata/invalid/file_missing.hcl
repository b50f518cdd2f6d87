kms "transit" {
  purpose = ["root"]
  token   = "file://testdata/no-such-token-file"
}
