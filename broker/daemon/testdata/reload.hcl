# A broker for the reload tests; @NAME@ is replaced by the test.
log_level = "@LEVEL@"

listener "tcp" {
  address     = "@ADDR@"
  tls_disable = true
}

storage "sqlite" {
  path = "@DB@"
}

plugins {
  directory = "@PLUGINS@"
}

kms "aead" {
  purpose = ["root"]
  key     = "@ROOT_KEY@"
  @ROOT_KEY_ID_NAME@  = "@ROOT_KEY_ID@"
  timeout = "1s"
}

kms "aead" {
  purpose = [@WA_PURPOSES@]
  key     = "@WA_KEY@"
  key_id  = "wa-1"
  timeout = "1s"
  start_timeout = "@WA_START_TIMEOUT@"
}
