# Cloudflare in front of an otapub store (an R2 bucket with a custom domain, or
# any origin serving the store's public/ folder).
#   terraform apply -var zone_id=... -var hostname=updates.example.com

variable "zone_id" { type = string }
variable "hostname" { type = string }

# The two protocol headers on every */manifest response, and
# "revalidate every time" for devices on pointers.
resource "cloudflare_ruleset" "otapub_headers" {
  zone_id = var.zone_id
  name    = "otapub manifest headers"
  kind    = "zone"
  phase   = "http_response_headers_transform"

  rules {
    description = "Expo protocol headers on manifests"
    expression  = "(http.host eq \"${var.hostname}\" and ends_with(http.request.uri.path, \"/manifest\"))"
    action      = "rewrite"
    action_parameters {
      headers {
        name      = "expo-protocol-version"
        operation = "set"
        value     = "1"
      }
      headers {
        name      = "expo-sfv-version"
        operation = "set"
        value     = "0"
      }
    }
  }

  rules {
    description = "Pointers: devices revalidate every check-in"
    expression  = "(http.host eq \"${var.hostname}\" and not starts_with(http.request.uri.path, \"/updates/\") and not starts_with(http.request.uri.path, \"/assets/\"))"
    action      = "rewrite"
    action_parameters {
      headers {
        name      = "Cache-Control"
        operation = "set"
        value     = "private, max-age=0"
      }
    }
  }
}

# The edge caches everything, honouring the origin's Cache-Control
# (s-maxage=60 on pointers, a year on immutable objects).
resource "cloudflare_ruleset" "otapub_cache" {
  zone_id = var.zone_id
  name    = "otapub cache"
  kind    = "zone"
  phase   = "http_request_cache_settings"

  rules {
    description = "Cache the update tree as the origin says"
    expression  = "(http.host eq \"${var.hostname}\")"
    action      = "set_cache_settings"
    action_parameters {
      cache = true
      edge_ttl {
        mode = "respect_origin"
      }
      browser_ttl {
        mode = "respect_origin"
      }
    }
  }
}

# Insights (`otapub insights ingest --format cloudflare`, see README.md): the
# stock client's request headers and the response's `im` (a launch-asset
# patch was served) as custom fields of the zone's HTTP request logs
# (RequestHeaders, ResponseHeaders). Header names in lowercase, as
# Cloudflare requires.
resource "cloudflare_ruleset" "otapub_log_fields" {
  zone_id = var.zone_id
  name    = "otapub log fields"
  kind    = "zone"
  phase   = "http_log_custom_fields"

  rules {
    description = "Headers otapub insights read"
    expression  = "true"
    action      = "log_custom_field"
    action_parameters {
      request_fields = [
        "eas-client-id",
        "expo-current-update-id",
        "expo-embedded-update-id",
        "expo-recent-failed-update-ids",
        "a-im",
        "expo-requested-update-id",
      ]
      response_fields = ["im"]
    }
  }
}

# Where Logpush writes the zone's HTTP request logs (e.g. an R2 or S3
# destination_conf); empty: no Logpush job.
variable "logpush_destination" {
  type    = string
  default = ""
}

resource "cloudflare_logpush_job" "otapub_insights" {
  count            = var.logpush_destination == "" ? 0 : 1
  zone_id          = var.zone_id
  name             = "otapub-insights"
  dataset          = "http_requests"
  destination_conf = var.logpush_destination
  enabled          = true
  output_options {
    field_names = [
      "ClientRequestHost",
      "ClientRequestPath",
      "EdgeStartTimestamp",
      "EdgeResponseStatus",
      "EdgeResponseBytes",
      "RequestHeaders",
      "ResponseHeaders",
    ]
    timestamp_format = "rfc3339"
  }
}
