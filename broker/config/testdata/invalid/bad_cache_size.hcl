cache_size = -3
kms "aead" {
  purpose = ["root"]
  key     = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
}
