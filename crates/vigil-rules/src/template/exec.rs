//! Execution: walks a parsed [`Template`] with a dot value and variables, writing text.
//!
//! Separate from parsing so one tree serves many expansions, and from the function map
//! so the control flow (scopes of `$x :=`, `range` over lists, maps and ints, the step
//! budget) reads on its own.

use super::functions::call;
use super::parser::{Arg, Node, Pipe, Template};
use super::{Env, TemplateError, Value};

struct Exec<'a> {
    vars: Vec<(String, Value)>,
    env: &'a dyn Env,
    out: String,
    steps: usize,
}

const MAX_STEPS: usize = 100_000;

impl Template {
    /// Executes with `data` as dot and `vars` predefined (`$` is the data).
    pub fn execute(
        &self,
        data: &Value,
        vars: &[(&str, Value)],
        env: &dyn Env,
    ) -> Result<String, TemplateError> {
        let mut ex = Exec {
            vars: vec![(String::new(), data.clone())],
            env,
            out: String::new(),
            steps: 0,
        };
        for (n, v) in vars {
            ex.vars.push((n.to_string(), v.clone()));
        }
        ex.nodes(&self.nodes, data)?;
        Ok(ex.out)
    }
}

impl Exec<'_> {
    fn nodes(&mut self, nodes: &[Node], dot: &Value) -> Result<(), TemplateError> {
        for n in nodes {
            self.steps += 1;
            if self.steps > MAX_STEPS {
                return Err(TemplateError::TooExpensive);
            }
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipe(p, dot)?;
                    if p.decl.is_empty() {
                        self.out.push_str(&v.print());
                    }
                }
                Node::If(p, a, b) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    let r = if v.truthy() {
                        self.nodes(a, dot)
                    } else {
                        self.nodes(b, dot)
                    };
                    self.vars.truncate(mark);
                    r?;
                }
                Node::With(p, a, b) => {
                    let mark = self.vars.len();
                    let v = self.pipe(p, dot)?;
                    let r = if v.truthy() {
                        self.nodes(a, &v)
                    } else {
                        self.nodes(b, dot)
                    };
                    self.vars.truncate(mark);
                    r?;
                }
                Node::Range(p, a, b) => {
                    let mark = self.vars.len();
                    let mut pp = p.clone();
                    let decl = std::mem::take(&mut pp.decl);
                    let v = self.pipe(&pp, dot)?;
                    let items: Vec<(Value, Value)> = match v {
                        Value::List(l) => l
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| (Value::Int(i as i64), v))
                            .collect(),
                        Value::Map(m) => m
                            .into_iter()
                            .map(|(k, v)| (Value::Str(k), Value::Str(v)))
                            .collect(),
                        Value::Int(n) => (0..n).map(|i| (Value::Int(i), Value::Int(i))).collect(),
                        Value::Nil => Vec::new(),
                        other => {
                            return Err(TemplateError::exec(format!(
                                "range can't iterate over {}",
                                other.print()
                            )));
                        }
                    };
                    if items.is_empty() {
                        self.nodes(b, dot)?;
                    }
                    for (k, v) in items {
                        let inner = self.vars.len();
                        match decl.as_slice() {
                            [one] => self.vars.push((one.clone(), v.clone())),
                            [i, e] => {
                                self.vars.push((i.clone(), k));
                                self.vars.push((e.clone(), v.clone()));
                            }
                            _ => {}
                        }
                        self.nodes(a, &v)?;
                        self.vars.truncate(inner);
                    }
                    self.vars.truncate(mark);
                }
            }
        }
        Ok(())
    }

    fn pipe(&mut self, p: &Pipe, dot: &Value) -> Result<Value, TemplateError> {
        let mut last: Option<Value> = None;
        for cmd in &p.cmds {
            last = Some(self.command(cmd, dot, last)?);
        }
        let v = last.unwrap_or(Value::Nil);
        if let Some(name) = p.decl.last() {
            if p.declare {
                self.vars.push((name.clone(), v.clone()));
            } else if let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                slot.1 = v.clone();
            } else {
                return Err(TemplateError::exec(format!("undefined variable: ${name}")));
            }
        }
        Ok(v)
    }

    fn command(
        &mut self,
        args: &[Arg],
        dot: &Value,
        piped: Option<Value>,
    ) -> Result<Value, TemplateError> {
        if let Some(Arg::Func(name)) = args.first() {
            let mut vals = Vec::with_capacity(args.len());
            for a in &args[1..] {
                vals.push(self.operand(a, dot)?);
            }
            if let Some(p) = piped {
                vals.push(p);
            }
            return call(self.env, name, vals);
        }
        if args.len() > 1 || piped.is_some() {
            return Err(TemplateError::exec(format!(
                "can't give argument to non-function {:?}",
                args[0]
            )));
        }
        self.operand(&args[0], dot)
    }

    fn operand(&mut self, a: &Arg, dot: &Value) -> Result<Value, TemplateError> {
        match a {
            Arg::Dot(f) => fields(dot.clone(), f),
            Arg::Var(name, f) => {
                let v = self
                    .vars
                    .iter()
                    .rev()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone())
                    .ok_or_else(|| TemplateError::exec(format!("undefined variable: ${name}")))?;
                fields(v, f)
            }
            Arg::Str(s) => Ok(Value::Str(s.clone())),
            Arg::Num(n, true) => Ok(Value::Int(*n as i64)),
            Arg::Num(n, false) => Ok(Value::Num(*n)),
            Arg::Bool(b) => Ok(Value::Bool(*b)),
            Arg::Nil => Ok(Value::Nil),
            Arg::Func(name) => call(self.env, name, Vec::new()),
            Arg::Paren(p, f) => {
                let mark = self.vars.len();
                let v = self.pipe(p, dot);
                self.vars.truncate(mark);
                fields(v?, f)
            }
        }
    }
}

/// Follows a field chain (`.a.b`) from `v`: map keys (missing is empty) or struct fields.
pub(super) fn fields(mut v: Value, f: &[String]) -> Result<Value, TemplateError> {
    for name in f {
        v = match v {
            Value::Map(m) => Value::Str(m.get(name).cloned().unwrap_or_default()),
            Value::Struct(mut s) => s.remove(name).ok_or_else(|| {
                TemplateError::exec(format!("can't evaluate field {name} in type struct"))
            })?,
            Value::Nil => {
                return Err(TemplateError::exec(format!(
                    "nil pointer evaluating .{name}"
                )));
            }
            other => {
                return Err(TemplateError::exec(format!(
                    "can't evaluate field {name} in type {}",
                    other.type_name()
                )));
            }
        };
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use crate::template::testing::run;

    #[test]
    fn control_flow_and_trim() {
        assert_eq!(
            run("{{ if gt $value 0.5 }}high{{ else }}low{{ end }}", 0.7),
            "high"
        );
        assert_eq!(
            run(
                "{{ if gt $value 0.5 }}high{{ else if gt $value 0.1 }}mid{{ else }}low{{ end }}",
                0.2
            ),
            "mid"
        );
        assert_eq!(run("a  {{- \"b\" -}}  c", 0.0), "abc");
        assert_eq!(run("{{/* note */}}x{{ $x := 3 }}{{ $x }}", 0.0), "x3");
        assert_eq!(
            run(
                "{{ range $k, $v := $labels }}{{ $k }}={{ $v }},{{ end }}",
                0.0
            ),
            "instance=localhost:8000,job=ml,"
        );
        assert_eq!(
            run("{{ len $labels }} {{ index $labels \"job\" }}", 0.0),
            "2 ml"
        );
    }
}
