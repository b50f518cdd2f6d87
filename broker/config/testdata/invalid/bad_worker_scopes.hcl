auth {
  worker_scopes = "o_1"
}
kms "aead" {
  purpose = ["root"]
  key     = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
}
