//! Published ports: short and long `ports:` forms, and the server's own
//! port under `network_mode: host`.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use rustc_hash::FxHashSet;

use super::model::flag_value;
use super::{Kv, PublishedPort, Reader, ServerKind, Service, Token};
use crate::finding::Rule;
use crate::yaml::{Node, Value};

impl Reader<'_> {
    pub(super) fn ports(
        &mut self,
        name: &str,
        node: &Node,
        argv: &[Token],
        env: &BTreeMap<String, Kv>,
        service: &mut Service,
    ) {
        let path = format!("services.{name}.ports");
        if let Some(mode) = node.get("network_mode")
            && let Some(text) = self.scalar(mode, &format!("services.{name}.network_mode"))
            && text.trim() == "host"
        {
            service.network_mode_host = true;
            // Docker ignores `ports:` in host mode; the server's own port is the host port.
            let port = match flag_value(argv, &["--port"]) {
                Some(token) => Some((token.text.clone(), token.pos)),
                None => match (service.server, env.get("PORT")) {
                    (
                        Some(ServerKind::Tgi),
                        Some(Kv {
                            value: Some(v),
                            pos,
                        }),
                    ) => Some((v.clone(), *pos)),
                    (Some(kind), _) => Some((kind.default_port().to_string(), mode.pos)),
                    (None, _) => None,
                },
            };
            if let Some((text, pos)) = port {
                match text.trim().parse::<u16>() {
                    Ok(port) if port > 0 => service.ports.push(PublishedPort {
                        host: port,
                        container: None,
                        host_ip: None,
                        protocol: protocol("tcp"),
                        pos: self.loc(pos),
                    }),
                    _ => {
                        let message = format!(
                            "{}: service `{name}`: `--port` must be a port number 1..65535, found `{text}`",
                            self.path
                        );
                        self.push(
                            Rule::Rc002,
                            vec![format!("services.{name}.--port")],
                            pos,
                            message,
                        );
                    }
                }
            }
            return;
        }
        let Some(ports) = node.get("ports") else {
            return;
        };
        if ports.is_null() {
            return;
        }
        let Some(items) = ports.as_seq() else {
            let found = ports.kind_name();
            self.rc002(
                ports,
                &path,
                format!("`{path}` must be a list, found a {found}"),
            );
            return;
        };
        // Usually one binding per item: exact, not the four a first push gives.
        service.ports.reserve_exact(items.len());
        let mut seen = FxHashSet::default();
        for item in items {
            let parsed = match &item.value {
                Value::Scalar(s) => parse_short_port(&s.text),
                Value::Map(_) => self.long_port(item),
                Value::Seq(_) => {
                    Err("a port must be a string or a mapping, found a list".to_owned())
                }
            };
            match parsed {
                Ok(bindings) => {
                    for (host_ip, host, container, protocol) in bindings {
                        // Compose publishes a binding listed twice once.
                        if !seen.insert((host, container, host_ip.clone(), protocol.clone())) {
                            continue;
                        }
                        service.ports.push(PublishedPort {
                            host,
                            container,
                            host_ip: host_ip.clone(),
                            protocol: protocol.clone(),
                            pos: self.loc(item.pos),
                        });
                    }
                }
                Err(message) => self.rc002(item, &path, format!("`{path}`: {message}")),
            }
        }
    }

    /// `{target, published, host_ip, protocol}`.
    pub(super) fn long_port(&mut self, item: &Node) -> Result<Vec<Binding>, String> {
        let text = |key: &str| -> Result<Option<String>, String> {
            match item.get(key) {
                None => Ok(None),
                Some(n) if n.is_null() => Ok(None),
                Some(n) => n
                    .as_str()
                    .map(|s| Some(s.trim().to_owned()))
                    .ok_or_else(|| format!("`{key}` must be a scalar, found a {}", n.kind_name())),
            }
        };
        let target = text("target")?.ok_or_else(|| "a long-form port needs `target`".to_owned())?;
        let container = parse_range(&target)?;
        let protocol = text("protocol")?
            .unwrap_or_else(|| "tcp".to_owned())
            .to_ascii_lowercase();
        let host_ip = text("host_ip")?.filter(|s| !s.is_empty());
        let Some(published) = text("published")?.filter(|s| !s.is_empty()) else {
            return Ok(Vec::new());
        };
        let host = parse_range(&published)?;
        bindings(host_ip, host, container, &protocol)
    }
}

/// (host ip, host port, container port, protocol)
type Binding = (Option<String>, u16, Option<u16>, Arc<str>);

/// `name` (lowercase) as a protocol: `tcp`, `udp` and `sctp` shared
/// process-wide, others (which Compose refuses) their own copy.
fn protocol(name: &str) -> Arc<str> {
    static KNOWN: OnceLock<[Arc<str>; 3]> = OnceLock::new();
    let known = KNOWN.get_or_init(|| ["tcp", "udp", "sctp"].map(Arc::from));
    match known.iter().find(|known| ***known == *name) {
        Some(shared) => Arc::clone(shared),
        None => Arc::from(name),
    }
}

/// Long ranges would make a binding per port; a larger one is a mistake.
const MAX_PORT_RANGE: u32 = 4096;

/// Short syntax: `[HOST_IP:][HOST[-END]:]CONTAINER[-END][/PROTOCOL]`. Only
/// bindings with a fixed host port are returned (a bare container port gets a
/// random host port).
pub(crate) fn parse_short_port(text: &str) -> Result<Vec<Binding>, String> {
    let text = text.trim();
    let (spec, protocol) = match text.rsplit_once('/') {
        Some((spec, proto)) => (spec, proto.to_ascii_lowercase()),
        None => (text, "tcp".to_owned()),
    };
    // `[::1]:8000:8000`: an IPv6 host address in brackets.
    let (host_ip, rest) = if let Some(after) = spec.strip_prefix('[') {
        let (ip, rest) = after
            .split_once("]:")
            .ok_or_else(|| format!("`{text}` is not a valid port mapping"))?;
        (Some(ip.to_owned()), rest)
    } else {
        (None, spec)
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (host_ip, host, container) = match (host_ip, parts.as_slice()) {
        (None, [container]) => (None, None, *container),
        (None, [host, container]) => (None, Some(*host), *container),
        (None, [ip, host, container]) => (Some((*ip).to_owned()), Some(*host), *container),
        (Some(ip), [host, container]) => (Some(ip), Some(*host), *container),
        // `::1:8000:8000`: as Docker splits it, the address is everything
        // before the last two parts.
        (None, [ip @ .., host, container]) => (Some(ip.join(":")), Some(*host), *container),
        _ => return Err(format!("`{text}` is not a valid port mapping")),
    };
    let container = parse_range(container).map_err(|e| format!("`{text}`: {e}"))?;
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return Ok(Vec::new());
    };
    let host = parse_range(host).map_err(|e| format!("`{text}`: {e}"))?;
    let host_ip = host_ip.filter(|ip| !ip.is_empty());
    bindings(host_ip, host, container, &protocol)
}

pub(super) fn bindings(
    host_ip: Option<String>,
    host: (u16, u16),
    container: (u16, u16),
    protocol: &str,
) -> Result<Vec<Binding>, String> {
    let host_len = u32::from(host.1 - host.0) + 1;
    let container_len = u32::from(container.1 - container.0) + 1;
    if host_len > MAX_PORT_RANGE {
        return Err(format!(
            "port range {}-{} is longer than {MAX_PORT_RANGE} ports",
            host.0, host.1
        ));
    }
    if container_len != 1 && container_len != host_len {
        return Err(format!(
            "host range {}-{} and container range {}-{} differ in length",
            host.0, host.1, container.0, container.1
        ));
    }
    let protocol = self::protocol(protocol);
    let mut out = Vec::new();
    for offset in 0..host_len {
        let Ok(offset) = u16::try_from(offset) else {
            break;
        };
        let container_port = if container_len == 1 {
            container.0
        } else {
            container.0 + offset
        };
        out.push((
            host_ip.clone(),
            host.0 + offset,
            Some(container_port),
            Arc::clone(&protocol),
        ));
    }
    Ok(out)
}

pub(super) fn parse_range(text: &str) -> Result<(u16, u16), String> {
    let text = text.trim();
    let port = |t: &str| -> Result<u16, String> {
        match t.trim().parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(format!("`{t}` is not a port number 1..65535")),
        }
    };
    match text.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if a > b {
                return Err(format!("port range `{text}` runs backwards"));
            }
            Ok((a, b))
        }
        None => {
            let p = port(text)?;
            Ok((p, p))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ports() {
        let p = |s: &str| {
            parse_short_port(s).map(|v| {
                v.into_iter()
                    .map(|b| (b.0, b.1, b.2, b.3))
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(p("8000").unwrap(), vec![]);
        assert_eq!(
            p("8000:80").unwrap(),
            vec![(None, 8000, Some(80), "tcp".into())]
        );
        assert_eq!(
            p("127.0.0.1:8001:8000").unwrap(),
            vec![(Some("127.0.0.1".into()), 8001, Some(8000), "tcp".into())]
        );
        assert_eq!(p("127.0.0.1::8000").unwrap(), vec![]);
        assert_eq!(
            p("[::1]:9000:9000/udp").unwrap(),
            vec![(Some("::1".into()), 9000, Some(9000), "udp".into())]
        );
        assert_eq!(
            p("8000-8001:9000-9001").unwrap(),
            vec![
                (None, 8000, Some(9000), "tcp".into()),
                (None, 8001, Some(9001), "tcp".into())
            ]
        );
        assert!(p("8000-8002:9000-9001").is_err());
        assert!(p("x:80").is_err());
        assert!(p("70000:80").is_err());
        assert!(p("1-65535:80").is_err());
    }
}
