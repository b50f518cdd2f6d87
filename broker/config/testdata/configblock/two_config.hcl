kms "aead" {
  purpose = ["config"]
}

kms "transit" {
  purpose = ["root", "config"]
}
