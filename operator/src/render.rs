//! `render` and `check-sample`: the offline inputs of `scripts/validate-manifests.sh`.

use std::path::{Path, PathBuf};

use kube::CustomResourceExt;
use kube::core::cel::Validator;
use serde_json::Value;

use crate::builders;
use crate::crd::FileGrid;
use crate::install;
use crate::validate::{ValidGrid, validate};

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a FileGrid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_yaml::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("encoding: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("encoding: {0}")]
    Yaml(#[from] serde_yaml::Error),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RenderError + '_ {
    move |source| RenderError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The CRD's openAPIV3Schema as JSON.
pub fn crd_schema() -> Value {
    let crd = FileGrid::crd();
    let schema = crd
        .spec
        .versions
        .first()
        .and_then(|v| v.schema.as_ref())
        .and_then(|s| s.open_api_v3_schema.as_ref());
    schema
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null)
}

/// The openAPIV3Schema as a strict JSON Schema, as the API server applies it with
/// `kubectl --validate=strict`: `nullable` becomes a null type, unknown fields are errors,
/// and the Kubernetes extensions are dropped (CEL is checked by [`check_sample`]).
pub fn strict_json_schema() -> Value {
    let mut s = crd_schema();
    strictify(&mut s);
    if let Value::Object(o) = &mut s {
        o.insert(
            "$schema".to_string(),
            Value::String("http://json-schema.org/draft-07/schema#".to_string()),
        );
        if let Some(Value::Object(props)) = o.get_mut("properties") {
            props.insert(
                "metadata".to_string(),
                serde_json::json!({"type": "object", "required": ["name"]}),
            );
            props.insert(
                "apiVersion".to_string(),
                serde_json::json!({"const": "filegrid.io/v1alpha1"}),
            );
            props.insert("kind".to_string(), serde_json::json!({"const": "FileGrid"}));
        }
        o.insert(
            "required".to_string(),
            serde_json::json!(["apiVersion", "kind", "metadata", "spec"]),
        );
    }
    s
}

fn strictify(v: &mut Value) {
    let Value::Object(o) = v else { return };
    let nullable = o.remove("nullable") == Some(Value::Bool(true));
    let int_or_string = o.remove("x-kubernetes-int-or-string") == Some(Value::Bool(true));
    let preserve = o.remove("x-kubernetes-preserve-unknown-fields") == Some(Value::Bool(true));
    o.retain(|k, _| !k.starts_with("x-kubernetes-"));
    if int_or_string {
        o.insert("type".to_string(), serde_json::json!(["integer", "string"]));
    }
    if nullable && let Some(Value::String(t)) = o.get("type").cloned() {
        o.insert("type".to_string(), serde_json::json!([t, "null"]));
    }
    if o.contains_key("properties") && !o.contains_key("additionalProperties") && !preserve {
        o.insert("additionalProperties".to_string(), Value::Bool(false));
    }
    for (k, child) in o.iter_mut() {
        match k.as_str() {
            "properties" => {
                if let Value::Object(props) = child {
                    props.values_mut().for_each(strictify);
                }
            }
            "items" | "additionalProperties" => strictify(child),
            "anyOf" | "oneOf" | "allOf" => {
                if let Value::Array(xs) = child {
                    xs.iter_mut().for_each(strictify);
                }
            }
            _ => {}
        }
    }
}

fn read_sample(path: &Path) -> Result<Value, RenderError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_yaml::from_str(&text).map_err(|source| RenderError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Everything the API server and the operator would check on a sample, except the
/// structural schema (check-jsonschema does that): CEL rules on the raw object, decoding
/// into the Rust types, and the operator's own validation.
pub fn check_sample(path: &Path) -> Result<ValidGrid, RenderError> {
    let raw = read_sample(path)?;
    let invalid = |message: String| RenderError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let mut fg: FileGrid = serde_json::from_value(raw.clone())
        .map_err(|e| invalid(format!("does not decode: {e}")))?;
    // CEL sees the object after defaulting, as on the API server.
    let defaulted = serde_json::to_value(&fg)?;
    Validator::new()
        .validate(&crd_schema(), &defaulted, None)
        .map_err(|e| invalid(format!("CEL: {e}")))?;
    fg.metadata
        .namespace
        .get_or_insert_with(|| "default".to_string());
    fg.metadata
        .uid
        .get_or_insert_with(|| "00000000-0000-0000-0000-000000000000".to_string());
    validate(&fg).map_err(|e| invalid(e.to_string()))
}

/// Every object the operator would apply for `grid`, as JSON.
pub fn children(grid: &ValidGrid) -> Result<Vec<Value>, serde_json::Error> {
    let mut out = vec![
        serde_json::to_value(builders::config_map(grid))?,
        serde_json::to_value(builders::head_headless_service(grid))?,
        serde_json::to_value(builders::head_client_service(grid))?,
        serde_json::to_value(builders::cluster_headless_service(grid))?,
        serde_json::to_value(builders::head_stateful_set(grid))?,
        serde_json::to_value(builders::cluster_stateful_set(
            grid,
            grid.spec.cluster.replicas,
        ))?,
        serde_json::to_value(builders::head_pdb(grid))?,
        serde_json::to_value(builders::cluster_pdb(grid))?,
    ];
    if grid.spec.monitor.enabled {
        out.push(serde_json::to_value(builders::monitor_service(grid))?);
        out.push(serde_json::to_value(builders::monitor_deployment(grid))?);
    }
    if grid.spec.metrics.service_monitor.enabled {
        out.push(serde_json::to_value(builders::service_monitor(grid))?);
    }
    if grid.spec.security.network_policy.enabled {
        out.push(serde_json::to_value(builders::network_policy(grid))?);
    }
    Ok(out)
}

fn file_name(obj: &Value) -> String {
    let get = |p: &str| {
        obj.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string()
    };
    format!(
        "{}-{}.yaml",
        get("/kind").to_lowercase(),
        get("/metadata/name")
    )
}

fn write(path: &Path, text: &str) -> Result<(), RenderError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    std::fs::write(path, text).map_err(io(path))
}

/// Write `out/install/*.yaml`, `out/schema/filegrid.json` and `out/children/<sample>/*.yaml`
/// for every valid sample (`*.yaml` directly in `samples`).
pub fn render(samples: &Path, out: &Path) -> Result<Vec<PathBuf>, RenderError> {
    let mut written = vec![];
    let mut emit = |path: PathBuf, text: String| -> Result<(), RenderError> {
        write(&path, &text)?;
        written.push(path);
        Ok(())
    };
    emit(out.join("install/crd.yaml"), crate::crd::crd_yaml()?)?;
    for obj in install::manifests("filegrid-system") {
        emit(
            out.join("install").join(file_name(&obj)),
            serde_yaml::to_string(&obj)?,
        )?;
    }
    emit(
        out.join("schema/filegrid.json"),
        serde_json::to_string_pretty(&strict_json_schema())?,
    )?;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(samples)
        .map_err(io(samples))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    entries.sort();
    for sample in entries {
        let grid = check_sample(&sample)?;
        let stem = sample
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("sample")
            .to_string();
        for obj in children(&grid)? {
            emit(
                out.join("children").join(&stem).join(file_name(&obj)),
                serde_yaml::to_string(&obj)?,
            )?;
        }
    }
    Ok(written)
}
