# The config purpose's block alone, for -config-kms.
kms "aead" {
  purpose = ["config"]
  key     = "x9l3pB0mPZ0wOqjNpf1wg8oYJ6V7CkqVhqkD6wF3n0I="
  key_id  = "config-1"
}
