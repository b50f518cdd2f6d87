kms "transit" {
  address  = "https://vault.internal:8200"
  key_name = "broker"
}
