# A broker whose worker-auth block is Vault transit, for the effective
# settings log. @NAME@ is replaced by the test.
listener "tcp" {
  address     = "127.0.0.1:0"
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
  key_id  = "root-1"
}

kms "transit" {
  purpose    = ["worker-auth"]
  @ADDRESS@
  token      = "env://BROKER_TEST_TRANSIT_TOKEN"
  mount_path = "@MOUNT@"
  key_name   = "@KEY_NAME@"
}
