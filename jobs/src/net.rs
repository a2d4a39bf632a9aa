//! Outbound HTTP to addresses tenants choose, guarded against SSRF.
//!
//! A tenant must not be able to make Keel call its own infrastructure: loopback, private ranges,
//! link-local (cloud metadata at 169.254.169.254), CGNAT, multicast and unspecified addresses are
//! refused unless the operator allows private networks (`KEEL_ALLOW_PRIVATE_NETWORKS`, which tests
//! use). Names are checked *after* DNS resolution, inside the client's resolver, so DNS rebinding
//! cannot slip past a check made earlier; literal IPs are checked before the request; redirects
//! are not followed (a redirect could point anywhere).

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

/// The error the guarded resolver and [`check_url`] return for a refused destination.
#[derive(Debug, thiserror::Error)]
#[error("destination {0} is not allowed (loopback, private, link-local or metadata address)")]
pub struct BlockedAddress(pub String);

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

/// IPv6: unspecified, loopback, NAT64, Teredo, unique-local (incl. fd00:ec2::254 metadata),
/// link-local, multicast. IPv4-mapped and 6to4 addresses are checked by the IPv4 they embed.
static V6_BLOCKED: LazyLock<Vec<Ipv6Net>> = LazyLock::new(|| {
    [
        "::/128",
        "::1/128",
        "64:ff9b::/96",
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
        return Err(BlockedAddress(host.to_string()).to_string());
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
                    return Err(Box::new(BlockedAddress(format!("{host} ({})", bad.ip())))
                        as Box<dyn std::error::Error + Send + Sync>);
                }
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// A client builder whose resolver refuses internal addresses: the base of every client that
/// calls tenant-chosen hosts (webhooks, Jira).
pub fn guarded_builder(policy: &NetPolicy) -> reqwest::ClientBuilder {
    reqwest::Client::builder().dns_resolver(Arc::new(GuardedResolver { policy: *policy }))
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

/// Whether a reqwest error was caused by the SSRF guard (then retrying cannot help).
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
        assert!(blocked_cause(&err).is_some(), "{err:?}");
    }
}
