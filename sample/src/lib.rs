//! The bundled sample: an online shop's customers, products and orders as a
//! folder of files, generated deterministically, with a pipeline file that
//! syncs it into a local DuckDB database. `syncline demo` and the desktop
//! studio's "bundled sample shop" both write it.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

/// The sample pipeline file.
pub const PIPELINE: &str = r#"# The bundled sample: an online shop's customers, products and orders,
# synced from a folder of files into a local DuckDB file, then kept in sync
# as files are added, changed or removed.
name = "shop"
description = "Sample shop: files -> DuckDB"

[sources.shop]
kind = "files"
path = "shop"

[[sources.shop.tables]]
name = "customers"
pattern = "customers.csv"
key = ["customer_id"]

[[sources.shop.tables]]
name = "products"
pattern = "products.jsonl"
key = ["product_id"]
columns = { attributes = "json" }

[[sources.shop.tables]]
name = "orders"
pattern = "orders/*.csv"
key = ["order_id"]
columns = { amount = "decimal(12,2)" }

[targets.warehouse]
kind = "duckdb"
path = "shop.duckdb"
inputs = ["shop"]
"#;

const COUNTRIES: &[&str] = &["DE", "FR", "NL", "US", "GB", "ES", "IT", "PL", "SE", "JP"];
const FIRST: &[&str] = &[
    "Ada", "Lin", "Sam", "Noor", "Kai", "Mia", "Ravi", "Zoe", "Ola", "Ines",
];
const LAST: &[&str] = &[
    "Berg", "Okafor", "Silva", "Kowalski", "Tanaka", "Haddad", "Novak", "Reyes",
];
const CATEGORIES: &[&str] = &["books", "garden", "kitchen", "toys", "audio", "outdoor"];
const STATUSES: &[&str] = &["placed", "paid", "shipped", "delivered", "returned"];

/// Sizes of the generated data.
#[derive(Debug, Clone, Copy)]
pub struct SampleSize {
    /// Customers.
    pub customers: u64,
    /// Products.
    pub products: u64,
    /// Orders, spread over 12 monthly files.
    pub orders: u64,
}

impl SampleSize {
    /// The default: a few hundred thousand rows.
    pub const DEFAULT: SampleSize = SampleSize {
        customers: 50_000,
        products: 2_000,
        orders: 300_000,
    };
}

/// Writes the sample folder (`<dir>/shop/...`) and pipeline (`<dir>/shop.toml`).
/// Existing files are left alone. Returns the pipeline path.
pub fn write(dir: &Path, size: SampleSize) -> Result<std::path::PathBuf> {
    write_data(dir, size)?;
    let pipeline = dir.join("shop.toml");
    if !pipeline.exists() {
        std::fs::write(&pipeline, PIPELINE)
            .with_context(|| format!("writing {}", pipeline.display()))?;
    }
    Ok(pipeline)
}

/// Writes only the sample folder (`<dir>/shop/...`), the same files
/// [`write`] writes; [`PIPELINE`] syncs it when saved in `dir`. Existing
/// files are left alone. Returns the folder.
pub fn write_data(dir: &Path, size: SampleSize) -> Result<std::path::PathBuf> {
    let data = dir.join("shop");
    std::fs::create_dir_all(data.join("orders"))
        .with_context(|| format!("creating {}", data.display()))?;
    let mut rng = fastrand::Rng::with_seed(20_261_125);

    let customers = data.join("customers.csv");
    if !customers.exists() {
        let mut out = String::from("customer_id,name,email,country,signed_up_at,is_active\n");
        for id in 1..=size.customers {
            let first = FIRST[rng.usize(..FIRST.len())];
            let last = LAST[rng.usize(..LAST.len())];
            let _ = writeln!(
                out,
                "{id},{first} {last},{}.{}{id}@example.com,{},2024-{:02}-{:02} {:02}:{:02}:{:02},{}",
                first.to_lowercase(),
                last.to_lowercase(),
                COUNTRIES[rng.usize(..COUNTRIES.len())],
                rng.u32(1..=12),
                rng.u32(1..=28),
                rng.u32(0..24),
                rng.u32(0..60),
                rng.u32(0..60),
                rng.u8(0..10) > 0,
            );
        }
        atomic_write(&customers, &out)?;
    }

    let products = data.join("products.jsonl");
    if !products.exists() {
        let mut out = String::new();
        for id in 1..=size.products {
            let category = CATEGORIES[rng.usize(..CATEGORIES.len())];
            let _ = writeln!(
                out,
                r#"{{"product_id":{id},"name":"{category} item {id}","category":"{category}","price":"{}.{:02}","attributes":{{"weight_g":{},"color":"{}"}}}}"#,
                rng.u32(1..300),
                rng.u32(0..100),
                rng.u32(50..5000),
                ["red", "green", "blue", "black"][rng.usize(..4)],
            );
        }
        atomic_write(&products, &out)?;
    }

    let per_month = size.orders / 12;
    let mut order_id = 0u64;
    for month in 1..=12u32 {
        let path = data.join("orders").join(format!("2025-{month:02}.csv"));
        let count = if month == 12 {
            size.orders - per_month * 11
        } else {
            per_month
        };
        let mut out =
            String::from("order_id,customer_id,product_id,quantity,amount,status,ordered_at\n");
        for i in 0..count {
            order_id += 1;
            // A few malformed rows, as real exports have: they land in the
            // dead-letter table with their reason.
            if month == 3 && i % 25_000 == 7 {
                let _ = writeln!(out, "{order_id},{},oops", rng.u64(1..=size.customers));
                continue;
            }
            if month == 7 && i % 25_000 == 11 {
                let _ = writeln!(
                    out,
                    "{order_id},{},1,2,twelve euros,paid,2025-07-01T10:00:00Z",
                    rng.u64(1..=size.customers)
                );
                continue;
            }
            let quantity = rng.u32(1..5);
            let _ = writeln!(
                out,
                "{order_id},{},{},{quantity},{}.{:02},{},2025-{month:02}-{:02}T{:02}:{:02}:{:02}Z",
                rng.u64(1..=size.customers),
                rng.u64(1..=size.products),
                rng.u32(1..900) * quantity,
                rng.u32(0..100),
                STATUSES[rng.usize(..STATUSES.len())],
                rng.u32(1..=28),
                rng.u32(0..24),
                rng.u32(0..60),
                rng.u32(0..60),
            );
        }
        if !path.exists() {
            atomic_write(&path, &out)?;
        }
    }
    Ok(data)
}

fn atomic_write(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("partial");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(dir: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).expect("readable") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    let text = std::fs::read_to_string(&path).expect("text");
                    out.push((
                        path.strip_prefix(dir)
                            .expect("inside")
                            .display()
                            .to_string(),
                        text,
                    ));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn the_sample_is_deterministic_and_complete() {
        let size = SampleSize {
            customers: 20,
            products: 5,
            orders: 120,
        };
        let a = tempfile::tempdir().expect("tempdir");
        let b = tempfile::tempdir().expect("tempdir");
        let path = write(a.path(), size).expect("written");
        assert_eq!(std::fs::read_to_string(path).expect("pipeline"), PIPELINE);
        write_data(b.path(), size).expect("written");
        let files_a: Vec<_> = read_all(a.path())
            .into_iter()
            .filter(|(name, _)| name != "shop.toml")
            .collect();
        let files_b = read_all(b.path());
        assert_eq!(files_a, files_b);
        let names: Vec<&str> = files_b.iter().map(|(n, _)| n.as_str()).collect();
        assert!(names.contains(&"shop/customers.csv"), "{names:?}");
        assert!(names.contains(&"shop/products.jsonl"), "{names:?}");
        assert_eq!(
            names
                .iter()
                .filter(|n| n.starts_with("shop/orders/"))
                .count(),
            12
        );
        let customers = &files_b
            .iter()
            .find(|(n, _)| n == "shop/customers.csv")
            .expect("there")
            .1;
        assert_eq!(customers.lines().count(), 21);
    }
}
