# The config block is clean; other blocks hold markers, even where a
# decrypted value is not yet a valid duration.
kms "aead" {
  purpose = ["config"]
  key     = "c2VjcmV0LWtleS1ieXRlcy10aGF0LWFyZS0zMi1ieXRlcyE="
  key_id  = "config-1"
}

kms "awskms" {
  purpose    = ["root"]
  secret_key = "{{decrypt(Y3Q6Zm9v)}}"
  timeout    = "{{decrypt(Y3Q6YmFy)}}"
}

kms "aead" {
  purpose = ["recovery"]
  key     = "{{encrypt(not yet encrypted)}}"
}
