# A config block with another key: it cannot open ten_values.hcl's values.
kms "aead" {
  purpose = ["config"]
  key     = "Zb1q3nJ0QvW7a1dQmHq5H2c8bK0wO8q0K1Zt0lX2m3Y="
  key_id  = "config-other"
}
