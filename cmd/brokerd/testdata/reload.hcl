# A broker for the SIGHUP test. The root key is encrypted, so every
# reload decrypts it again. @NAME@ is filled in by the test.
log_level = "@LEVEL@"

listener "tcp" {
  address     = "@ADDR@"
  tls_disable = true
}

storage "sqlite" {
  path = "@DB@"
}

kms "aead" {
  purpose = ["root"]
  key     = "{{encrypt(@ROOT_KEY@)}}"
  key_id  = "@ROOT_KEY_ID@"
  timeout = "2s"
}

kms "aead" {
  purpose = ["recovery"]
  key     = "@RECOVERY_KEY@"
  key_id  = "recovery-1"
}

kms "aead" {
  purpose = ["config"]
  key     = "@CONFIG_KEY@"
  key_id  = "config-1"
}
