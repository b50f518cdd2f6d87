# One block per start_timeout case of TestClientConfigStartTimeout.
kms "aead" {
  purpose = ["root"]
  key     = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
}

kms "aead" {
  purpose       = ["previous-root"]
  key           = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
  start_timeout = "2s"
}

kms "aead" {
  purpose       = ["recovery"]
  key           = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
  start_timeout = "90s"
}

kms "aead" {
  purpose       = ["config"]
  key           = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
  start_timeout = "5m"
}
