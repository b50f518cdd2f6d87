listener "tcp" {
  tls_disable         = true
  max_plaintext_bytes = 100000000
}
kms "aead" {
  purpose = ["root"]
  key     = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
}
