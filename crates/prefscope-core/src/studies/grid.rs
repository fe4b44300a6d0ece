//! Sweep grids over config keys: `--grid model.hidden=[16],[64, 64]` and a config file's
//! `[sweep.grid]` table name axes of TOML values; a sweep runs every combination, each in a folder
//! named after its settings.

/// One axis: its dotted key and values.
#[derive(Clone, Debug, PartialEq)]
pub struct Axis {
    pub key: String,
    pub values: Vec<toml::Value>,
}

/// Split at the commas outside brackets, braces and quotes.
fn split_top_level(s: &str) -> Vec<String> {
    let (mut parts, mut cur, mut depth, mut quote) = (vec![], String::new(), 0i32, None::<char>);
    for c in s.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                parts.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    parts.push(cur);
    parts.into_iter().map(|p| p.trim().to_string()).collect()
}

/// `KEY=V1,V2,…`: each value a TOML value; a bare word (`bt`) is taken as a string.
pub fn parse_axis(spec: &str) -> Result<Axis, String> {
    let Some((key, values)) = spec.split_once('=') else { return Err(format!("--grid {spec}: expected KEY=V1,V2,… (e.g. model.hidden=[16],[64])")) };
    let key = key.trim();
    if key.is_empty() || key.split('.').any(|p| p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')) {
        return Err(format!("--grid {spec}: `{key}` is not a dotted config key such as model.hidden"));
    }
    let values = split_top_level(values)
        .into_iter()
        .map(|v| {
            if v.is_empty() {
                return Err(format!("--grid {spec}: an empty value"));
            }
            Ok(toml::from_str::<toml::Table>(&format!("v = {v}")).ok().and_then(|mut t| t.remove("v")).unwrap_or(toml::Value::String(v)))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(Axis { key: key.to_string(), values })
}

/// A value as it goes into a folder name: letters, digits, `.` and `-`; the rest become `_`.
fn slug(v: &toml::Value) -> String {
    let text = match v {
        toml::Value::String(s) => s.clone(),
        // 1e30 and 1e-5 rather than thirty digits.
        toml::Value::Float(x) if *x != 0.0 && (x.abs() >= 1e5 || x.abs() < 1e-3) => format!("{x:e}"),
        toml::Value::Float(x) => format!("{x}"),
        other => other.to_string(),
    };
    let s: String = text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).collect();
    let s = s.split('_').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("_");
    if s.is_empty() { "_".into() } else { s }
}

/// Every combination of the axes' values, the first axis slowest.
pub fn points(axes: &[Axis]) -> Vec<Vec<(String, toml::Value)>> {
    axes.iter().fold(vec![vec![]], |acc, axis| acc.into_iter().flat_map(|p| axis.values.iter().map(move |v| [p.clone(), vec![(axis.key.clone(), v.clone())]].concat())).collect())
}

/// A point's folder name: `hidden-16__n_pairs-500__seed-0` (each key's last part).
pub fn point_name(settings: &[(String, toml::Value)]) -> String {
    settings.iter().map(|(k, v)| format!("{}-{}", k.rsplit('.').next().unwrap_or(k), slug(v))).collect::<Vec<_>>().join("__")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_values_split_at_top_level_commas_and_parse_as_toml() {
        let a = parse_axis("model.hidden=[16],[64, 64],[]").unwrap();
        assert_eq!(a.key, "model.hidden");
        assert_eq!(a.values, vec![toml::Value::Array(vec![16.into()]), toml::Value::Array(vec![64.into(), 64.into()]), toml::Value::Array(vec![])]);
        let b = parse_axis("model.kind=bt, gpm,\"a,b\"").unwrap();
        assert_eq!(b.values, vec![toml::Value::String("bt".into()), "gpm".into(), "a,b".into()]);
        assert_eq!(parse_axis("train.lr=1e-3,0.01").unwrap().values, vec![toml::Value::Float(1e-3), toml::Value::Float(0.01)]);
        assert!(parse_axis("hidden").is_err() && parse_axis("=1,2").is_err() && parse_axis("a..b=1").is_err() && parse_axis("a=1,,2").is_err());
    }

    #[test]
    fn points_are_every_combination_with_readable_names() {
        let axes = vec![parse_axis("model.hidden=[16],[64, 64]").unwrap(), parse_axis("seed=0,1,2").unwrap()];
        let p = points(&axes);
        assert_eq!(p.len(), 6);
        assert_eq!(point_name(&p[0]), "hidden-16__seed-0");
        assert_eq!(point_name(&p[5]), "hidden-64_64__seed-2");
        assert_eq!(point_name(&[("train.lr".into(), 1e30.into()), ("train.beta".into(), 0.01.into()), ("x".into(), 2.5e-4.into())]), "lr-1e30__beta-0.01__x-2.5e-4");
        assert_eq!(points(&[]).len(), 1, "no axes: the base config alone");
    }
}
