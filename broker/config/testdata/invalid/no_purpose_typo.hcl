kms "transit" {
  purpse   = "root"
  key_name = "broker"
}
