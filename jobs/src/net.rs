//! Outbound HTTP to addresses tenants choose, guarded against SSRF.
//!
//! A tenant must not be able to make Keel call its own infrastructure: loopback, private ranges,
//! link-local (cloud metadata at 169.254.169.254), CGNAT, multicast and unspecified addresses are
//! refused unless the operator allows private networks (`KEEL_ALLOW_PRIVATE_NETWORKS`, which tests
//! use). Names are checked *after* DNS resolution, inside the client's resolver, so DNS rebinding
//! cannot slip past a check made earlier; literal IPs are checked before the request; redirects
//! are not followed (a redirect could point anywhere); proxies from the environment
//! (`HTTP_PROXY`, `HTTPS_PROXY`, `ALL_PROXY`) are ignored, since a proxy would resolve the name
//! itself, past the guard.
//!
//! What the tenant reads about a refused destination (in `last_error` or a 422) names the host
//! only; the internal address it resolved to is logged for the operator and nowhere else. And a
//! tenant's URL is written into errors as [`redacted`] (`scheme://host/…`): chat webhooks carry
//! their secret in the path.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ipnet::{Ipv4Net, Ipv6Net};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::Url;

#[derive(Debug, Clone, Copy, Default)]
pub struct NetPolicy {
    pub allow_private: bool,
}

/// The error the guarded resolver and [`check_url`] return for a refused destination. Its
/// `Display` is what the tenant reads, so it names the host and never the address a name
/// resolved to (that would map Keel's internal network for the tenant): the resolver logs the
/// address for the operator instead.
#[derive(Debug, thiserror::Error)]
pub struct BlockedAddress {
    /// The host as the tenant wrote it (a name or a literal address).
    pub host: String,
    /// Whether a name was refused for what it resolved to (not for itself).
    pub resolved: bool,
}

impl std::fmt::Display for BlockedAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let how = if self.resolved {
            "resolves to a disallowed address"
        } else {
            "is not allowed"
        };
        write!(
            f,
            "destination {} {how} (loopback, private, link-local or metadata address)",
            self.host
        )
    }
}

/// `scheme://host[:port]/…`: a tenant's URL as errors and logs may show it. The path and query
/// are left out because chat webhooks (Slack, Discord, Teams) carry their secret there, and a
/// `last_error` is read by more people than the one who set the URL.
pub fn redacted(url: &Url) -> String {
    let host = match url.host() {
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        Some(h) => h.to_string(),
        None => String::new(),
    };
    match url.port() {
        Some(port) => format!("{}://{host}:{port}/…", url.scheme()),
        None => format!("{}://{host}/…", url.scheme()),
    }
}

/// IPv4 ranges tenant URLs must not reach: this-network, private, CGNAT, loopback, link-local
/// (cloud metadata), IETF protocol assignments, benchmarking, multicast and reserved.
static V4_BLOCKED: LazyLock<Vec<Ipv4Net>> = LazyLock::new(|| {
    [
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/3",
    ]
    .iter()
    .map(|n| n.parse().expect("static network"))
    .collect()
});

/// IPv6: unspecified, loopback and the deprecated IPv4-compatible addresses (`::/96`, e.g.
/// `::127.0.0.1`, which some stacks still route to the IPv4 they embed), NAT64 (the well-known
/// `64:ff9b::/96` and the local-use `64:ff9b:1::/48`, both translated to IPv4 addresses Keel
/// cannot see), Teredo, unique-local (incl. fd00:ec2::254 metadata), link-local, multicast.
/// IPv4-mapped and 6to4 addresses are checked by the IPv4 they embed.
static V6_BLOCKED: LazyLock<Vec<Ipv6Net>> = LazyLock::new(|| {
    [
        "::/96",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "2001::/32",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    ]
    .iter()
    .map(|n| n.parse().expect("static network"))
    .collect()
});

fn v4_blocked(ip: Ipv4Addr) -> bool {
    V4_BLOCKED.iter().any(|n| n.contains(&ip))
}

fn v6_blocked(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_blocked(v4);
    }
    // 6to4 (2002:AABB:CCDD::/48) routes to the IPv4 address AA.BB.CC.DD: 2002:7f00:1:: had
    // passed as a public address although it names 127.0.0.1 through a 6to4 relay.
    let seg = ip.segments();
    if seg[0] == 0x2002 {
        let [a, b] = seg[1].to_be_bytes();
        let [c, d] = seg[2].to_be_bytes();
        if v4_blocked(Ipv4Addr::new(a, b, c, d)) {
            return true;
        }
    }
    V6_BLOCKED.iter().any(|n| n.contains(&ip))
}

/// Whether `ip` is an internal address that tenant-chosen URLs must not reach.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_blocked(v4),
        IpAddr::V6(v6) => v6_blocked(v6),
    }
}

/// Checks a tenant-supplied URL without DNS: scheme, host, and literal internal addresses or
/// names that always mean "this machine" / "the metadata service". Used at submit (422) and again
/// before delivery.
pub fn check_url(raw: &str, policy: &NetPolicy) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("not a valid URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "scheme {:?} is not allowed; use https (or http)",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("URLs with credentials are not allowed".into());
    }
    let Some(host) = url.host() else {
        return Err("URL has no host".into());
    };
    if policy.allow_private {
        return Ok(url);
    }
    let blocked = match host {
        url::Host::Ipv4(ip) => is_internal(IpAddr::V4(ip)),
        url::Host::Ipv6(ip) => is_internal(IpAddr::V6(ip)),
        url::Host::Domain(d) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost"
                || d.ends_with(".localhost")
                || d == "metadata.google.internal"
                || d.ends_with(".internal")
        }
    };
    if blocked {
        return Err(BlockedAddress {
            host: host.to_string(),
            resolved: false,
        }
        .to_string());
    }
    Ok(url)
}

/// Resolves with the system resolver, then refuses the whole name if any address is internal.
struct GuardedResolver {
    policy: NetPolicy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.policy.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allow_private {
                if let Some(bad) = addrs.iter().find(|a| is_internal(a.ip())) {
                    // The address is for the operator's eyes only (see `BlockedAddress`).
                    tracing::warn!(host = ?host, address = %bad.ip(),
                        "refused an outbound request: the name resolves to an internal address");
                    return Err(Box::new(BlockedAddress {
                        host,
                        resolved: true,
                    })
                        as Box<dyn std::error::Error + Send + Sync>);
                }
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// A client builder whose resolver refuses internal addresses: the base of every client that
/// calls tenant-chosen hosts (webhooks, Jira).
///
/// `no_proxy`: reqwest reads `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY` by default, and through a
/// proxy the client resolves only the proxy's name; the proxy resolves the tenant's host, where
/// the guard cannot see it (a proxy inside the network reaches everything the guard refuses).
/// Operators who must send webhooks through an egress proxy need one that applies the same
/// rules itself; Keel does not pass tenant requests through one.
pub fn guarded_builder(policy: &NetPolicy) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .no_proxy()
        .dns_resolver(Arc::new(GuardedResolver { policy: *policy }))
}

/// The client handlers use for tenant-chosen URLs.
pub fn guarded_client(policy: &NetPolicy) -> reqwest::Client {
    guarded_builder(policy)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("Keel/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("static reqwest configuration is valid")
}

/// Whether a reqwest error was caused by the SSRF guard (then retrying cannot help): the
/// tenant-facing message, without the resolved address.
pub fn blocked_cause(err: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(b) = e.downcast_ref::<BlockedAddress>() {
            return Some(b.to_string());
        }
        source = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.100.100.200",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "224.0.0.1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        // IPv4-compatible (deprecated, `::/96`): the IPv4 address in the last 32 bits, which
        // some stacks still route; every one of them is refused, public ones too.
        for ip in [
            "::127.0.0.1",
            "::a9fe:a9fe",
            "::10.0.0.1",
            "::8.8.8.8",
            "::2",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "IPv4-compatible {ip}");
        }
        // NAT64: the well-known prefix and the local-use one (RFC 8215), both translated by a
        // gateway to IPv4 addresses the guard never sees.
        for ip in [
            "64:ff9b::7f00:1",
            "64:ff9b::808:808",
            "64:ff9b:1::a9fe:a9fe",
            "64:ff9b:1:ffff:ffff:ffff:ffff:ffff",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "NAT64 {ip}");
        }
        // Just outside those prefixes: ordinary public addresses.
        for ip in ["::1:0:0:1", "64:ff9b:2::1", "64:ff9a:ffff::1"] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "172.32.0.1",
            "2002:808:808::1",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn urls_are_checked_without_dns() {
        let deny = NetPolicy::default();
        assert!(check_url("https://example.com/hook", &deny).is_ok());
        for bad in [
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://169.254.169.254/latest/meta-data",
            "http://localhost/",
            "http://metadata.google.internal/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b:1::a9fe:a9fe]/",
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "not a url",
        ] {
            assert!(check_url(bad, &deny).is_err(), "{bad}");
        }
        let allow = NetPolicy {
            allow_private: true,
        };
        assert!(check_url("http://127.0.0.1:8080/", &allow).is_ok());
    }

    #[tokio::test]
    async fn the_client_refuses_names_resolving_to_internal_addresses() {
        let client = guarded_client(&NetPolicy::default());
        let err = client.get("http://localhost:9/").send().await.unwrap_err();
        let cause = blocked_cause(&err).expect("refused by the guard");
        // The tenant reads the host, not what it resolved to.
        assert_eq!(
            cause,
            "destination localhost resolves to a disallowed address (loopback, private, link-local or metadata address)"
        );
        assert!(
            !cause.contains("127.0.0.1") && !cause.contains("::1"),
            "{cause}"
        );
    }

    #[test]
    fn redacted_urls_keep_scheme_host_and_port_only() {
        let r = |s: &str| redacted(&Url::parse(s).unwrap());
        assert_eq!(
            r("https://hooks.slack.com/services/T0/B0/s3cr3t?x=1#f"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            r("http://127.0.0.1:8080/hook/abc"),
            "http://127.0.0.1:8080/…"
        );
        assert_eq!(
            r("https://[2001:db8::1]:8443/a"),
            "https://[2001:db8::1]:8443/…"
        );
    }
}
