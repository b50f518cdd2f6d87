# A broker config with ten values to encrypt: two on one line, quotes,
# braces and parentheses. @NAME@ is filled in by the test.
log_level = "{{encrypt(debug)}}"

listener "tcp" {
  address     = "{{encrypt(127.0.0.1)}}:{{encrypt(@PORT@)}}"
  tls_disable = true
}

storage "sqlite" {
  path = "{{encrypt(@DB@)}}"
}

kms "aead" {
  purpose = ["root"]
  key     = "{{encrypt(@ROOT_KEY@)}}"
  key_id  = "{{encrypt(root \"primary\" {v1})}}"
}

kms "aead" {
  purpose = ["worker-auth"]
  key     = "{{encrypt(@WORKER_KEY@)}}"
  key_id  = "{{encrypt(workers (a)}}"
}

kms "aead" {
  purpose = ["recovery"]
  key     = "{{encrypt(@RECOVERY_KEY@)}}"
  key_id  = "{{encrypt(rec {x)})}}"
}

kms "aead" {
  purpose = ["config"]
  key     = "@CONFIG_KEY@"
  key_id  = "config-1"
}
