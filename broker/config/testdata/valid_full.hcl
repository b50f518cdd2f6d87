# A config that sets every field.
log_level = "debug"

listener "tcp" {
  address       = "0.0.0.0:9443"
  grpc_address  = "0.0.0.0:9444"
  tls_cert_file = "/etc/brokerd/tls.crt"
  tls_key_file  = "/etc/brokerd/tls.key"
  max_plaintext_bytes = 65536
}

storage "postgres" {
  url = "postgres://broker@db.internal:5432/broker?sslmode=verify-full"
}

plugins {
  directory = "/usr/libexec/kmsbroker"
}

kms "awskms" {
  purpose       = ["root"]
  region        = "us-east-1"
  kms_key_id    = "alias/broker-root"
  timeout       = "2s"
  start_timeout = "30s"
}

kms "aead" {
  purpose = ["worker-auth", "recovery"]
  key     = "c2VjcmV0LWtleS1ieXRlcy10aGF0LWFyZS0zMi1ieXRlcyE="
  key_id  = "local-1"
}

kms "aead" {
  purpose        = ["config"]
  key_id         = "local-2"
  rotate         = true
  max_retries    = 3
  backoff_factor = 1.5
}

kms "custom-hsm" {
  purpose       = ["previous-root"]
  plugin_path   = "/opt/hsm/kmsbroker-plugin-hsm"
  plugin_sha256 = "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
  slot          = 0
}
