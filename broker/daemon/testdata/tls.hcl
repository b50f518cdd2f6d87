# A TLS broker for the certificate reload test.
listener "tcp" {
  address       = "127.0.0.1:0"
  tls_cert_file = "@CERT@"
  tls_key_file  = "@KEY@"
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
