auth {
  one_time_token_validity = "2h"
}
kms "aead" {
  purpose = ["root"]
  key     = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
}
