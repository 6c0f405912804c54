//! One parser per access-log format, each turning a line into a [`Hit`]:
//!
//! | format | what it is | request headers |
//! |---|---|---|
//! | `nginx` | JSON lines, the `otapub_insights` log_format of `deploy/nginx` | yes |
//! | `otapub` | JSON lines of `otapub serve --access-log` | yes |
//! | `cloudfront` | CloudFront standard logs (W3C, tab-separated, `#Fields:` header) | no |
//! | `cloudfront-realtime` | CloudFront real-time logs (tab-separated, the configured fields) | in `cs-headers` |
//! | `cloudflare` | Cloudflare Logpush `http_requests`, JSON lines | in `RequestHeaders` (custom fields) |
//! | `s3` | S3 server access logs (space-separated) | no |
//!
//! A line that does not parse is counted as skipped, never fatal.

use std::str::FromStr;

use chrono::{DateTime, NaiveDate, NaiveTime};
use serde_json::Value;

use super::{Headers, Hit};

/// An access-log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// nginx with `deploy/nginx`'s `otapub_insights` log_format.
    Nginx,
    /// `otapub serve --access-log`.
    Otapub,
    /// CloudFront standard logs.
    Cloudfront,
    /// CloudFront real-time logs.
    CloudfrontRealtime,
    /// Cloudflare Logpush (JSON).
    Cloudflare,
    /// S3 server access logs.
    S3,
}

/// Every format's name, as `--format` takes it.
pub const FORMAT_NAMES: &str = "nginx, otapub, cloudfront, cloudfront-realtime, cloudflare, s3";

impl Format {
    /// The name `--format` takes.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Nginx => "nginx",
            Format::Otapub => "otapub",
            Format::Cloudfront => "cloudfront",
            Format::CloudfrontRealtime => "cloudfront-realtime",
            Format::Cloudflare => "cloudflare",
            Format::S3 => "s3",
        }
    }

    /// Whether the format (as `deploy/` configures it) can log the request
    /// headers devices are counted by. Where it cannot, device figures stay
    /// null.
    pub fn logs_headers(self) -> bool {
        !matches!(self, Format::Cloudfront | Format::S3)
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "nginx" => Format::Nginx,
            "otapub" => Format::Otapub,
            "cloudfront" => Format::Cloudfront,
            "cloudfront-realtime" => Format::CloudfrontRealtime,
            "cloudflare" => Format::Cloudflare,
            "s3" => Format::S3,
            _ => return Err(format!("unknown log format {s:?}; one of: {FORMAT_NAMES}")),
        })
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fields of a CloudFront real-time log record when none are given:
/// those `deploy/cloudfront` configures, in CloudFront's order.
pub const REALTIME_FIELDS: [&str; 6] = [
    "timestamp",
    "sc-status",
    "sc-bytes",
    "cs-method",
    "cs-uri-stem",
    "cs-headers",
];

/// The fields of a CloudFront standard log line before a `#Fields:` line
/// names them: the documented order's first nine.
const STANDARD_FIELDS: [&str; 9] = [
    "date",
    "time",
    "x-edge-location",
    "sc-bytes",
    "c-ip",
    "cs-method",
    "cs(Host)",
    "cs-uri-stem",
    "sc-status",
];

/// The times a log line may carry (ms): 2000-01-01 to 2100-01-01.
const SANE_MS: (i64, i64) = (946_684_800_000, 4_102_444_800_000);

/// What one file gave.
#[derive(Debug, Default)]
pub struct Parsed {
    /// The requests.
    pub hits: Vec<Hit>,
    /// Lines read (blank lines and `#` comment lines of W3C files excluded).
    pub lines: u64,
    /// Lines that did not parse.
    pub skipped: u64,
}

/// Reads a log line by line, keeping what a format carries across lines
/// (a W3C file's `#Fields:`), and counts lines read and skipped.
#[derive(Debug)]
pub struct LineReader {
    format: Format,
    w3c: Vec<String>,
    realtime: Vec<String>,
    /// Lines read (blank lines and `#` comment lines of W3C files excluded).
    pub lines: u64,
    /// Lines that did not parse.
    pub skipped: u64,
}

impl LineReader {
    /// A reader of `format`; `fields` names a real-time log's fields
    /// (default [`REALTIME_FIELDS`]).
    pub fn new(format: Format, fields: Option<&[String]>) -> LineReader {
        LineReader {
            format,
            w3c: STANDARD_FIELDS.iter().map(|s| s.to_string()).collect(),
            realtime: match fields {
                Some(f) => f.to_vec(),
                None => REALTIME_FIELDS.iter().map(|s| s.to_string()).collect(),
            },
            lines: 0,
            skipped: 0,
        }
    }

    /// The request one line logs, if it is one insights read.
    pub fn line(&mut self, line: &str) -> Option<Hit> {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            return None;
        }
        if self.format == Format::Cloudfront && line.starts_with('#') {
            if let Some(names) = line.strip_prefix("#Fields:") {
                self.w3c = names.split_whitespace().map(str::to_string).collect();
            }
            return None;
        }
        self.lines += 1;
        let hit = match self.format {
            Format::Nginx | Format::Otapub => json_line(line),
            Format::Cloudfront => standard_line(line, &self.w3c),
            Format::CloudfrontRealtime => realtime_line(line, &self.realtime),
            Format::Cloudflare => cloudflare_line(line),
            Format::S3 => s3_line(line),
        };
        // A time no CDN writes (before 2000, after 2100) is a garbled line:
        // one far in the future would make every kept day look old.
        match hit {
            Ok(Some(h)) if (SANE_MS.0..SANE_MS.1).contains(&h.time_ms) => Some(h),
            Ok(None) => None,
            _ => {
                self.skipped += 1;
                None
            }
        }
    }
}

/// Reads one file's text. `fields` names a real-time log's fields (default
/// [`REALTIME_FIELDS`]).
pub fn parse(format: Format, text: &str, fields: Option<&[String]>) -> Parsed {
    let mut reader = LineReader::new(format, fields);
    let hits = text.lines().filter_map(|l| reader.line(l)).collect();
    Parsed {
        hits,
        lines: reader.lines,
        skipped: reader.skipped,
    }
}

/// `Ok(None)`: a well-formed line about something insights ignore.
type LineResult = Result<Option<Hit>, ()>;

fn strip_query(path: &str) -> String {
    path.split(['?', '#']).next().unwrap_or_default().to_string()
}

fn number(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Seconds since the epoch with a fraction ("1598283840.123").
fn epoch_seconds(s: &str) -> Option<i64> {
    let (whole, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    let secs: i64 = whole.parse().ok()?;
    let mut ms = 0i64;
    for (i, c) in frac.chars().take(3).enumerate() {
        ms += i64::from(c.to_digit(10)?) * 10i64.pow(2 - i as u32);
    }
    secs.checked_mul(1000)?.checked_add(ms)
}

fn rfc3339_ms(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.timestamp_millis())
}

/// nginx's `otapub_insights` and `otapub serve --access-log`: one JSON
/// object per request with `time` (RFC 3339) or `msec` (seconds since the
/// epoch), `path`, `status`, `bytes`, `im` (the response's) and the request
/// headers under their lowercase names.
fn json_line(line: &str) -> LineResult {
    let Value::Object(o) = serde_json::from_str::<Value>(line).map_err(|_| ())? else {
        return Err(());
    };
    let time_ms = match (o.get("msec"), o.get("time")) {
        (Some(Value::String(s)), _) => epoch_seconds(s),
        (Some(Value::Number(n)), _) => epoch_seconds(&n.to_string()),
        (_, Some(Value::String(s))) => rfc3339_ms(s),
        _ => None,
    }
    .ok_or(())?;
    let path = o.get("path").and_then(Value::as_str).ok_or(())?;
    let status = o
        .get("status")
        .and_then(number)
        .and_then(|s| u16::try_from(s).ok())
        .ok_or(())?;
    let headers = Headers::from_json(&o);
    Ok(Some(Hit {
        time_ms,
        path: strip_query(path),
        status,
        bytes: o.get("bytes").and_then(number),
        headers: Some(headers),
        patch_served: o.get("im").and_then(Value::as_str).map(|v| v.contains("bsdiff")),
    }))
}

/// The value of the field `name` in a line of the fields a `#Fields:` line (or
/// a real-time log's configuration) names.
fn field<'a>(fields: &[String], values: &[&'a str], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .position(|f| f == name)
        .and_then(|i| values.get(i).copied())
}

/// CloudFront standard logs: tab-separated, fields as the last `#Fields:`
/// line names them (`date`, `time`, `cs-uri-stem`, `sc-status`, `sc-bytes`).
fn standard_line(line: &str, fields: &[String]) -> LineResult {
    let values: Vec<&str> = line.split('\t').collect();
    let get = |name: &str| field(fields, &values, name);
    let date = NaiveDate::parse_from_str(get("date").ok_or(())?, "%Y-%m-%d").map_err(|_| ())?;
    let time = NaiveTime::parse_from_str(get("time").ok_or(())?, "%H:%M:%S").map_err(|_| ())?;
    let time_ms = date.and_time(time).and_utc().timestamp_millis();
    let path = get("cs-uri-stem").ok_or(())?;
    let status: u16 = get("sc-status").ok_or(())?.parse().map_err(|_| ())?;
    let bytes = get("sc-bytes").and_then(|b| b.parse().ok());
    Ok(Some(Hit {
        time_ms,
        path: percent_decode(path),
        status,
        bytes,
        headers: None,
        patch_served: None,
    }))
}

/// CloudFront real-time logs: tab-separated values of the configured fields
/// (`timestamp` in seconds with milliseconds, `sc-status`, `sc-bytes`,
/// `cs-uri-stem`, `cs-headers`). `cs-headers` holds the request's headers,
/// URL-encoded `name:value` lines (CloudFront truncates it to 800 bytes).
fn realtime_line(line: &str, fields: &[String]) -> LineResult {
    let values: Vec<&str> = line.split('\t').collect();
    if values.len() != fields.len() {
        return Err(());
    }
    let get = |name: &str| field(fields, &values, name);
    let time_ms = epoch_seconds(get("timestamp").ok_or(())?).ok_or(())?;
    let path = get("cs-uri-stem").ok_or(())?;
    let status: u16 = get("sc-status").ok_or(())?.parse().map_err(|_| ())?;
    let bytes = get("sc-bytes").and_then(|b| b.parse().ok());
    let headers = get("cs-headers").map(|raw| {
        let mut h = Headers::default();
        for l in percent_decode(raw).lines() {
            if let Some((k, v)) = l.split_once(':') {
                h.set(k, v);
            }
        }
        h
    });
    Ok(Some(Hit {
        time_ms,
        path: percent_decode(path),
        status,
        bytes,
        headers,
        patch_served: None,
    }))
}

/// Cloudflare Logpush `http_requests`: `EdgeStartTimestamp` (RFC 3339, or
/// a Unix time in s, ms or ns, as the job's `timestamp_format` says),
/// `ClientRequestPath` (or `ClientRequestURI`), `EdgeResponseStatus`,
/// `EdgeResponseBytes`, and the custom fields `RequestHeaders` and
/// `ResponseHeaders` (objects keyed by lowercase header name).
fn cloudflare_line(line: &str) -> LineResult {
    let Value::Object(o) = serde_json::from_str::<Value>(line).map_err(|_| ())? else {
        return Err(());
    };
    let time_ms = match o.get("EdgeStartTimestamp").ok_or(())? {
        Value::String(s) if s.contains('T') => rfc3339_ms(s),
        v => number(v).and_then(|n| {
            let n = i64::try_from(n).ok()?;
            Some(match n {
                n if n >= 100_000_000_000_000 => n / 1_000_000,
                n if n >= 100_000_000_000 => n,
                n => n * 1000,
            })
        }),
    }
    .ok_or(())?;
    let path = o
        .get("ClientRequestPath")
        .or_else(|| o.get("ClientRequestURI"))
        .and_then(Value::as_str)
        .ok_or(())?;
    let status = o
        .get("EdgeResponseStatus")
        .and_then(number)
        .and_then(|s| u16::try_from(s).ok())
        .ok_or(())?;
    let headers = match o.get("RequestHeaders") {
        Some(Value::Object(h)) => Some(Headers::from_json(h)),
        _ => None,
    };
    let patch_served = match o.get("ResponseHeaders") {
        Some(Value::Object(h)) => Some(
            h.iter()
                .any(|(k, v)| k.eq_ignore_ascii_case("im") && v.as_str().is_some_and(|v| v.contains("bsdiff"))),
        ),
        _ => None,
    };
    Ok(Some(Hit {
        time_ms,
        path: strip_query(path),
        status,
        bytes: o.get("EdgeResponseBytes").and_then(number),
        headers,
        patch_served,
    }))
}

/// S3 server access logs: space-separated, `"…"` and `[…]` quoting; the
/// fields bucket owner, bucket, time, remote IP, requester, request id,
/// operation, key, request URI, status, error code, bytes sent, … Only
/// `REST.GET.OBJECT` requests count; the key is the path.
fn s3_line(line: &str) -> LineResult {
    let f = s3_fields(line).ok_or(())?;
    if f.len() < 12 {
        return Err(());
    }
    let time = DateTime::parse_from_str(f[2], "%d/%b/%Y:%H:%M:%S %z").map_err(|_| ())?;
    let status: u16 = f[9].parse().map_err(|_| ())?;
    let bytes = if f[11] == "-" {
        Some(0)
    } else {
        Some(f[11].parse().map_err(|_| ())?)
    };
    if f[6] != "REST.GET.OBJECT" {
        return Ok(None);
    }
    Ok(Some(Hit {
        time_ms: time.timestamp_millis(),
        path: percent_decode(f[7]),
        status,
        bytes,
        headers: None,
        patch_served: None,
    }))
}

/// Splits an S3 access-log line into its fields (brackets and quotes kept out).
fn s3_fields(line: &str) -> Option<Vec<&str>> {
    let mut out = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        let (field, after) = match rest.as_bytes()[0] {
            b'"' => {
                let end = rest[1..].find('"')? + 1;
                (&rest[1..end], &rest[end + 1..])
            }
            b'[' => {
                let end = rest.find(']')?;
                (&rest[1..end], &rest[end + 1..])
            }
            _ => {
                let end = rest.find(' ').unwrap_or(rest.len());
                (&rest[..end], &rest[end..])
            }
        };
        out.push(field);
        rest = after.trim_start();
    }
    Some(out)
}

/// `%XX` decoded (invalid escapes kept as they are).
fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = "5B2B5E4A-3C2D-4E1F-9A8B-7C6D5E4F3A2B";
    const CURRENT: &str = "0c8e7f1a-1b2c-4d3e-8f9a-0b1c2d3e4f5a";
    const ASSET: &str = "0f343b0931126a20f133d67c2b018a3b5b1d1e7a4e4dbbbbd2c4c8a0c9d4a0f1";

    fn one(format: Format, text: &str) -> Hit {
        let p = parse(format, text, None);
        assert_eq!((p.hits.len(), p.skipped), (1, 0), "{text}");
        p.hits[0].clone()
    }

    #[test]
    fn nginx_json_lines_with_headers_nginx_logs_as_empty() {
        let line = format!(
            r#"{{"time":"2026-12-06T10:00:00+00:00","msec":"1796551200.250","method":"GET","path":"/production/ios/1.0.0/manifest?x=1","status":200,"bytes":"1870","im":"","eas-client-id":"{CLIENT}","expo-current-update-id":"{CURRENT}","expo-recent-failed-update-ids":"","a-im":"","expo-requested-update-id":""}}"#
        );
        let h = one(Format::Nginx, &line);
        assert_eq!(h.time_ms, 1_796_551_200_250);
        assert_eq!(h.path, "/production/ios/1.0.0/manifest");
        assert_eq!((h.status, h.bytes, h.patch_served), (200, Some(1870), Some(false)));
        let headers = h.headers.expect("headers");
        assert_eq!(headers.client_id.as_deref(), Some(CLIENT));
        assert_eq!(headers.current.as_deref(), Some(CURRENT));
        assert_eq!(headers.failed, None, "an empty header is no header");
    }

    #[test]
    fn otapub_serve_lines() {
        let line = format!(
            r#"{{"time":"2026-12-06T10:00:01.500Z","method":"GET","path":"/assets/{ASSET}","status":200,"bytes":5000,"im":"bsdiff","a-im":"bsdiff","expo-current-update-id":"{CURRENT}"}}"#
        );
        let h = one(Format::Otapub, &line);
        assert_eq!(h.time_ms, 1_796_551_201_500);
        assert_eq!(h.patch_served, Some(true));
        assert_eq!(h.headers.and_then(|h| h.a_im).as_deref(), Some("bsdiff"));
    }

    #[test]
    fn cloudfront_standard_logs_by_their_fields_line() {
        // The documented 33 fields, in the documented order.
        let text = format!(
            "#Version: 1.0\n#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len sc-range-start sc-range-end\n\
2026-12-06\t10:00:02\tLAX1-C1\t391442\t192.0.2.100\tGET\td111111abcdef8.cloudfront.net\t/assets/{ASSET}\t200\t-\texpo-updates/1\t-\t-\tHit\tSOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ==\tupdates.example.com\thttps\t250\t0.001\t-\tTLSv1.3\tTLS_AES_128_GCM_SHA256\tHit\tHTTP/2.0\t-\t-\t11040\t0.001\tHit\tapplication/javascript\t391000\t-\t-\n\
2026-12-06\tnot-a-time\tLAX1\n"
        );
        let p = parse(Format::Cloudfront, &text, None);
        assert_eq!((p.lines, p.hits.len(), p.skipped), (2, 1, 1));
        let h = &p.hits[0];
        assert_eq!(h.time_ms, 1_796_551_202_000);
        assert_eq!(
            (h.path.as_str(), h.status, h.bytes),
            (&*format!("/assets/{ASSET}"), 200, Some(391_442))
        );
        assert_eq!(h.headers, None, "standard logs record no request headers");
    }

    #[test]
    fn cloudfront_realtime_logs_with_url_encoded_headers() {
        let headers = format!(
            "host:updates.example.com%0Aeas-client-id:{CLIENT}%0Aexpo-current-update-id:{CURRENT}%0Aexpo-recent-failed-update-ids:%22{CURRENT}%22%0A"
        );
        let line = format!("1796551203.042\t200\t1870\tGET\t/production/android/1.0.0/manifest\t{headers}");
        let h = one(Format::CloudfrontRealtime, &line);
        assert_eq!(h.time_ms, 1_796_551_203_042);
        let headers = h.headers.expect("cs-headers");
        assert_eq!(headers.client_id.as_deref(), Some(CLIENT));
        assert_eq!(headers.failed.as_deref(), Some(&*format!("\"{CURRENT}\"")));
        // Another field list, without cs-headers: no headers at all.
        let fields: Vec<String> = ["timestamp", "c-ip", "sc-status", "sc-bytes", "cs-uri-stem"]
            .map(String::from)
            .to_vec();
        let p = parse(
            Format::CloudfrontRealtime,
            "1796551203.042\t192.0.2.1\t200\t10\t/x/manifest\n1796551203\ttoo-few\n",
            Some(&fields),
        );
        assert_eq!((p.hits.len(), p.skipped), (1, 1));
        assert_eq!(p.hits[0].headers, None);
    }

    #[test]
    fn cloudflare_logpush_json_with_custom_fields() {
        let line = format!(
            r#"{{"ClientRequestHost":"updates.example.com","ClientRequestMethod":"GET","ClientRequestPath":"/assets/{ASSET}","ClientRequestURI":"/assets/{ASSET}","EdgeResponseBytes":4210,"EdgeResponseStatus":226,"EdgeStartTimestamp":"2026-12-06T10:00:04Z","RayID":"8f1c2d3e4f5a6b7c","RequestHeaders":{{"a-im":"bsdiff","expo-current-update-id":"{CURRENT}","expo-requested-update-id":"{CURRENT}"}},"ResponseHeaders":{{"im":"bsdiff"}}}}"#
        );
        let h = one(Format::Cloudflare, &line);
        assert_eq!(
            (h.time_ms, h.status, h.bytes, h.patch_served),
            (1_796_551_204_000, 226, Some(4210), Some(true))
        );
        // Unix nanoseconds (the default timestamp_format), no custom fields.
        let h = one(
            Format::Cloudflare,
            r#"{"ClientRequestPath":"/a","EdgeResponseStatus":200,"EdgeResponseBytes":1,"EdgeStartTimestamp":1796551204000000000}"#,
        );
        assert_eq!((h.time_ms, h.headers, h.patch_served), (1_796_551_204_000, None, None));
        assert_eq!(
            parse(Format::Cloudflare, "{\"EdgeResponseStatus\":200}\n[1]\n", None).skipped,
            2
        );
    }

    #[test]
    fn s3_server_access_logs() {
        let get = format!(
            r#"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be amzn-s3-demo-bucket1 [06/Dec/2026:10:00:05 +0000] 192.0.2.3 - 3E57427F3EXAMPLE REST.GET.OBJECT prefix/public/assets/{ASSET} "GET /prefix/public/assets/{ASSET} HTTP/1.1" 200 - 391000 391000 70 10 "-" "Amazon CloudFront" - s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3/eTPFvsiP/XV/VLi31234= SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader amzn-s3-demo-bucket1.s3.us-west-1.amazonaws.com TLSV1.2 - -"#
        );
        let versioning = r#"79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be amzn-s3-demo-bucket1 [06/Feb/2019:00:00:38 +0000] 192.0.2.3 79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be 3E57427F3EXAMPLE REST.GET.VERSIONING - "GET /amzn-s3-demo-bucket1?versioning HTTP/1.1" 200 - 113 - 7 - "-" "S3Console/0.4" - s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3/eTPFvsiP/XV/VLi31234= SigV4 ECDHE-RSA-AES128-GCM-SHA256 AuthHeader amzn-s3-demo-bucket1.s3.us-west-1.amazonaws.com TLSV1.2 - -"#;
        let p = parse(
            Format::S3,
            &format!("{get}\n{versioning}\nnot an s3 line \"unterminated\n"),
            None,
        );
        assert_eq!((p.lines, p.hits.len(), p.skipped), (3, 1, 1));
        let h = &p.hits[0];
        assert_eq!(h.time_ms, 1_796_551_205_000);
        assert_eq!(
            (h.path.as_str(), h.bytes),
            (&*format!("prefix/public/assets/{ASSET}"), Some(391_000))
        );
    }

    #[test]
    fn garbage_is_skipped_never_fatal() {
        for f in [
            Format::Nginx,
            Format::Otapub,
            Format::Cloudfront,
            Format::CloudfrontRealtime,
            Format::Cloudflare,
            Format::S3,
        ] {
            let p = parse(f, "\u{0}\u{1}garbage %zz \"\n{\"time\": 5}\n", None);
            assert_eq!((p.lines, p.hits.len(), p.skipped), (2, 0, 2), "{f}");
        }
        let far = r#"{"msec":"99999999999.5","path":"/a","status":200}"#;
        assert_eq!(parse(Format::Otapub, far, None).skipped, 1, "a time past 2100");
    }
}
