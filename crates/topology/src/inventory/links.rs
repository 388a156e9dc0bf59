//! How two GPUs of a machine are connected: the entries of `nvidia-smi topo -m`
//! (docs/release-config.md, "GPU topology"), and the pairwise matrix of a
//! machine, given in `machine.yaml` or stood for by its `interconnect`
//! shorthand.

use std::fmt;

use serde::{Serialize, Serializer};

/// One entry of the matrix, off the diagonal. Ordered from worst to best, so
/// that `max` is the better link and `min` a group's bottleneck.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Link {
    /// Across NUMA nodes (the SMP interconnect between sockets); `SOC` in
    /// older drivers.
    Sys,
    /// Host bridges within one NUMA node.
    Node,
    /// A PCIe host bridge (typically the CPU).
    Phb,
    /// Several PCIe bridges, without a host bridge.
    Pxb,
    /// At most one PCIe bridge.
    Pix,
    /// NVLink, `n` bonded links (0: a count the file does not give, as with
    /// the `interconnect: nvlink` shorthand).
    Nvlink(u8),
}

/// The most bonded NVLinks one entry may say (NVLink 5 has 18 per GPU; the
/// bound leaves room and refuses nonsense).
pub const MAX_NVLINKS: u8 = 64;

impl Link {
    /// Reads an entry as `nvidia-smi topo -m` prints it (`X` is not a link).
    pub fn parse(text: &str) -> Option<Link> {
        Some(match text {
            "SYS" | "SOC" => Link::Sys,
            "NODE" => Link::Node,
            "PHB" => Link::Phb,
            "PXB" => Link::Pxb,
            "PIX" => Link::Pix,
            "NV" => Link::Nvlink(0),
            _ => {
                let count = text.strip_prefix("NV")?;
                if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                match count.parse::<u8>() {
                    Ok(n @ 1..=MAX_NVLINKS) => Link::Nvlink(n),
                    _ => return None,
                }
            }
        })
    }

    pub fn is_nvlink(self) -> bool {
        matches!(self, Link::Nvlink(_))
    }

    /// What it is, for messages and reasons.
    pub fn describe(self) -> String {
        match self {
            Link::Sys => "across NUMA nodes (SYS)".to_owned(),
            Link::Node => "within one NUMA node (NODE)".to_owned(),
            Link::Phb => "through a PCIe host bridge (PHB)".to_owned(),
            Link::Pxb => "through several PCIe switches (PXB)".to_owned(),
            Link::Pix => "through one PCIe switch (PIX)".to_owned(),
            Link::Nvlink(0) => "by NVLink".to_owned(),
            Link::Nvlink(_) => format!("by NVLink ({self})"),
        }
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Link::Sys => f.write_str("SYS"),
            Link::Node => f.write_str("NODE"),
            Link::Phb => f.write_str("PHB"),
            Link::Pxb => f.write_str("PXB"),
            Link::Pix => f.write_str("PIX"),
            Link::Nvlink(0) => f.write_str("NV"),
            Link::Nvlink(n) => write!(f, "NV{n}"),
        }
    }
}

impl Serialize for Link {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Steps one [`LinkMatrix::best_group`] search may take per link level:
/// an 8-GPU machine needs a few hundred, a 72-GPU NVLink domain a few
/// thousand.
const SEARCH_STEPS: u32 = 200_000;

/// The links between every pair of a machine's GPUs, by GPU index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkMatrix {
    gpus: usize,
    /// Row-major, `gpus * gpus`; the diagonal is unused (`Nvlink(0)`).
    cells: Vec<Link>,
}

/// Why a matrix was refused (the reader makes RC002 of it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatrixError {
    /// `row` has `found` entries (or the matrix `found` rows) for `gpus` GPUs.
    Size { row: Option<usize>, found: usize },
    /// Row `row`, column `column` is not a link nor `X` where it should be.
    Entry {
        row: usize,
        column: usize,
        text: String,
    },
    /// `(row, column)` and `(column, row)` differ.
    Asymmetric { row: usize, column: usize },
}

impl fmt::Display for MatrixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MatrixError::Size {
                row: Some(row),
                found,
            } => write!(f, "row {row} has {found} entries"),
            MatrixError::Size { row: None, found } => write!(f, "it has {found} rows"),
            MatrixError::Entry { row, column, text } if row == column => {
                write!(
                    f,
                    "row {row}, column {column} must be `X` (a GPU to itself), found `{text}`"
                )
            }
            MatrixError::Entry { row, column, text } => write!(
                f,
                "row {row}, column {column}: `{text}` is not a link (NV<n>, PIX, PXB, PHB, NODE, SYS)"
            ),
            MatrixError::Asymmetric { row, column } => write!(
                f,
                "GPU {row} to {column} and GPU {column} to {row} differ (the matrix must be symmetric)"
            ),
        }
    }
}

impl LinkMatrix {
    /// Every pair linked the same way.
    pub fn uniform(gpus: usize, link: Link) -> LinkMatrix {
        LinkMatrix {
            gpus,
            cells: vec![link; gpus * gpus],
        }
    }

    /// Each pair's link from `link(a, b)` (called for `a < b`; the matrix is
    /// made symmetric).
    pub fn from_fn(gpus: usize, mut link: impl FnMut(usize, usize) -> Link) -> LinkMatrix {
        let mut cells = vec![Link::Nvlink(0); gpus * gpus];
        for a in 0..gpus {
            for b in a + 1..gpus {
                let value = link(a, b);
                if let Some(cell) = cells.get_mut(a * gpus + b) {
                    *cell = value;
                }
                if let Some(cell) = cells.get_mut(b * gpus + a) {
                    *cell = value;
                }
            }
        }
        LinkMatrix { gpus, cells }
    }

    /// From the rows' texts, as `machine.yaml` or `nvidia-smi topo -m` give
    /// them: `gpus` rows of `gpus` entries, `X` on the diagonal.
    pub fn from_rows<R, T>(gpus: usize, rows: R) -> Result<LinkMatrix, MatrixError>
    where
        R: IntoIterator,
        R::Item: IntoIterator<Item = T>,
        T: AsRef<str>,
    {
        let mut cells = Vec::with_capacity(gpus * gpus);
        let mut count = 0;
        for (row, entries) in rows.into_iter().enumerate() {
            count += 1;
            if row >= gpus {
                continue;
            }
            let mut found = 0;
            for (column, text) in entries.into_iter().enumerate() {
                found += 1;
                if column >= gpus {
                    continue;
                }
                let text = text.as_ref().trim();
                let link = if row == column {
                    (text == "X").then_some(Link::Nvlink(0))
                } else {
                    Link::parse(text)
                };
                let Some(link) = link else {
                    return Err(MatrixError::Entry {
                        row,
                        column,
                        text: text.to_owned(),
                    });
                };
                cells.push(link);
            }
            if found != gpus {
                return Err(MatrixError::Size {
                    row: Some(row),
                    found,
                });
            }
        }
        if count != gpus {
            return Err(MatrixError::Size {
                row: None,
                found: count,
            });
        }
        let matrix = LinkMatrix { gpus, cells };
        for row in 0..gpus {
            for column in row + 1..gpus {
                if matrix.link(row, column) != matrix.link(column, row) {
                    return Err(MatrixError::Asymmetric { row, column });
                }
            }
        }
        Ok(matrix)
    }

    pub fn gpus(&self) -> usize {
        self.gpus
    }

    /// The link between GPUs `a` and `b` (`None` for a GPU to itself or an
    /// index beyond the matrix).
    pub fn link(&self, a: usize, b: usize) -> Option<Link> {
        if a == b || a >= self.gpus || b >= self.gpus {
            return None;
        }
        self.cells.get(a * self.gpus + b).copied()
    }

    /// The worst link between any two GPUs of `group` (`None` for fewer than
    /// two): what an all-reduce across the group is bound by.
    pub fn worst_in(&self, group: &[usize]) -> Option<Link> {
        let mut worst: Option<Link> = None;
        for (i, &a) in group.iter().enumerate() {
            for &b in group.iter().skip(i + 1) {
                let link = self.link(a, b)?;
                worst = Some(worst.map_or(link, |w| w.min(link)));
            }
        }
        worst
    }

    /// Among `candidates` (GPU indices), a group of `size` whose worst link
    /// is the best any such group has, with that link; of equally good
    /// groups the one of the lowest indices. `None` for `size < 2` or fewer
    /// candidates than `size`. A search that would take too long (a machine
    /// of hundreds of GPUs) settles for a worse level, never a wrong one:
    /// the group returned always has the link returned.
    pub fn best_group(&self, size: usize, candidates: &[usize]) -> Option<(Link, Vec<usize>)> {
        let mut candidates: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&g| g < self.gpus)
            .collect();
        candidates.sort_unstable();
        candidates.dedup();
        if size < 2 || candidates.len() < size {
            return None;
        }
        let mut levels: Vec<Link> = Vec::new();
        for (i, &a) in candidates.iter().enumerate() {
            for &b in candidates.iter().skip(i + 1) {
                if let Some(link) = self.link(a, b)
                    && !levels.contains(&link)
                {
                    levels.push(link);
                }
            }
        }
        levels.sort_unstable_by(|a, b| b.cmp(a));
        for level in levels {
            let mut budget = SEARCH_STEPS;
            let mut group = Vec::with_capacity(size);
            if self.clique(&candidates, size, level, 0, &mut group, &mut budget) {
                return Some((level, group));
            }
        }
        None
    }

    /// Extends `group` to `size` GPUs of `candidates[from..]`, every pair
    /// linked at least `level`.
    fn clique(
        &self,
        candidates: &[usize],
        size: usize,
        level: Link,
        from: usize,
        group: &mut Vec<usize>,
        budget: &mut u32,
    ) -> bool {
        if group.len() == size {
            return true;
        }
        for (offset, &gpu) in candidates.iter().enumerate().skip(from) {
            if *budget == 0 || candidates.len() - offset < size - group.len() {
                return false;
            }
            *budget -= 1;
            if group
                .iter()
                .all(|&member| self.link(member, gpu).is_some_and(|link| link >= level))
            {
                group.push(gpu);
                if self.clique(candidates, size, level, offset + 1, group, budget) {
                    return true;
                }
                group.pop();
            }
        }
        false
    }

    /// Every pair NVLink.
    pub fn all_nvlink(&self) -> bool {
        (0..self.gpus)
            .all(|a| (0..self.gpus).all(|b| a == b || self.link(a, b).is_some_and(Link::is_nvlink)))
    }

    /// The first pair (`a < b`) that is not NVLink, if any.
    pub fn first_non_nvlink(&self) -> Option<(usize, usize, Link)> {
        (0..self.gpus).find_map(|a| {
            (a + 1..self.gpus).find_map(|b| {
                self.link(a, b)
                    .filter(|link| !link.is_nvlink())
                    .map(|link| (a, b, link))
            })
        })
    }

    /// The rows as text, `X` on the diagonal (as `machine.yaml` writes them).
    pub fn rows(&self) -> Vec<Vec<String>> {
        (0..self.gpus)
            .map(|a| {
                (0..self.gpus)
                    .map(|b| {
                        self.link(a, b)
                            .map_or_else(|| "X".to_owned(), |l| l.to_string())
                    })
                    .collect()
            })
            .collect()
    }
}

impl Serialize for LinkMatrix {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.rows().serialize(serializer)
    }
}
