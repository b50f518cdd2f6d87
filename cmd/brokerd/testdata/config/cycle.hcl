plugins { directory = "@PLUGINS@" }

kms "aead" {
  purpose = ["root"]
  key     = "{{encrypt(@KEY@)}}"
}

kms "aead" {
  purpose = ["config"]
  key     = "{{encrypt(@CONFIG_KEY@)}}"
}
