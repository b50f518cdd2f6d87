kms "transit" {
  purpose = ["root"]
  token   = "env://KMSBROKER_TEST_UNSET_TOKEN"
}
