//! Repository hygiene that no compiler checks: every Rust source file says
//! what it owns in a `//!` module doc before any code, and the engine's
//! modules keep to the floors that `ARCHITECTURE.md` gives them.
//!
//! # Floors
//! `ARCHITECTURE.md` has a section headed `## Floors` holding one markdown
//! table. Its first column is a floor number (0 is the bottom); its second
//! lists that floor's modules as backticked crate-relative paths, comma
//! separated (`` `verify::report`, `progress` ``); further columns are prose
//! and are ignored. A module's floor is that of the longest entry that is a
//! prefix of its path by `::` segments, so `verify::report` can sit on a
//! lower floor than the rest of `verify`. For every file module under `src/`
//! except the crate root (`lib.rs`, which only declares and re-exports) and
//! `src/bin/`:
//! - it imports only from its own floor or a floor below;
//! - no chain of imports leads from it back to itself.
//!
//! Every module must have a floor, and every entry must decide the floor of
//! at least one module, so the table cannot drift from the tree.
//! `TIDY_FLOORS_FILE=path` checks a draft table in another file instead.
//!
//! # What counts as an import
//! `src/` is parsed with `syn`. An import is an edge from the file module
//! that writes a path to the file module the path names:
//! - every `use` (groups, renames and globs expanded; `pub use` too);
//! - every path of two segments or more in code, types, patterns, bounds and
//!   impl headers that starts with `crate`, `super`, `self` or a name the
//!   module has in scope (a submodule, an item or an import);
//! - every such `a::b` sequence inside the tokens of macro calls and of
//!   attributes (`#[error("{}", crate::preflight::blocked_message(r))]`).
//!
//! `mod x;` is not an edge, items under `#[cfg(test)]` are skipped, and
//! `super` and `self` inside an inline `mod x { ... }` are relative to it.
//! A path is walked down the module tree for as long as its segments are
//! modules. A name that a module imports (by `use`, `pub` or not, or through
//! a glob) is followed to where it comes from, so using a re-exported name
//! depends on the module that defines it, not on the one re-exporting it.
//!
//! Not seen: paths inside string literals (`#[serde(with = "...")]`), paths
//! that a macro pastes together from fragments, and names that a `use`
//! inside a function body brings in (the `use` itself is an edge, but paths
//! that go on through such a name are not followed).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use proc_macro2::{Spacing, TokenStream, TokenTree};
use syn::punctuated::Punctuated;
use syn::visit::{self, Visit};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_source_file_starts_with_a_module_doc() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in ["src", "src-tauri/src", "tests"] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(
        files.len() > 20,
        "found only {} files; is the walk broken?",
        files.len()
    );
    let missing: Vec<String> = files
        .iter()
        .filter(|f| {
            let text = std::fs::read_to_string(f).unwrap_or_default();
            !text.trim_start().starts_with("//!")
        })
        .map(|f| f.strip_prefix(root).unwrap_or(f).display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "files without a leading //! doc: {missing:#?}"
    );
}

// ---------------------------------------------------------------------------
// Floors: the module tree, its imports, the table and the two rules.
// ---------------------------------------------------------------------------

/// A module's path below the crate root, one string a segment; the root is
/// the empty path.
type ModPath = Vec<String>;

/// How many imports and globs one path may be followed through; a chain of
/// re-exports that goes round in circles stops there instead of forever.
const RESOLUTION_STEPS: usize = 64;

fn show(module: &[String]) -> String {
    if module.is_empty() {
        "crate".to_string()
    } else {
        module.join("::")
    }
}

/// One file module to check: where it sits in the tree, the file that names
/// it in messages, and its source text.
struct SourceModule {
    module: ModPath,
    file: String,
    text: String,
}

/// The file modules of `src/`, but not of `src/bin/` (the binary is a
/// separate crate that may use the library from any floor).
fn crate_modules(root: &Path) -> Vec<SourceModule> {
    let src = root.join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let bin = src.join("bin");
    let mut modules: Vec<SourceModule> = files
        .into_iter()
        .filter(|f| !f.starts_with(&bin))
        .map(|f| {
            let rel = f.strip_prefix(&src).expect("the walk stays under src/");
            let mut module: ModPath = rel
                .with_extension("")
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|s| s == "mod") || module == ["lib"] {
                module.pop();
            }
            let text = std::fs::read_to_string(&f)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", f.display()));
            let segments: Vec<String> = rel
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            SourceModule {
                module,
                file: format!("src/{}", segments.join("/")),
                text,
            }
        })
        .collect();
    modules.sort_by(|a, b| a.module.cmp(&b.module));
    modules
}

/// The attributes of an item, whatever its kind.
fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    use syn::Item;
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::ExternCrate(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::ForeignMod(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::TraitAlias(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

fn impl_item_attrs(item: &syn::ImplItem) -> &[syn::Attribute] {
    use syn::ImplItem;
    match item {
        ImplItem::Const(i) => &i.attrs,
        ImplItem::Fn(i) => &i.attrs,
        ImplItem::Type(i) => &i.attrs,
        ImplItem::Macro(i) => &i.attrs,
        _ => &[],
    }
}

fn trait_item_attrs(item: &syn::TraitItem) -> &[syn::Attribute] {
    use syn::TraitItem;
    match item {
        TraitItem::Const(i) => &i.attrs,
        TraitItem::Fn(i) => &i.attrs,
        TraitItem::Type(i) => &i.attrs,
        TraitItem::Macro(i) => &i.attrs,
        _ => &[],
    }
}

/// Whether attributes compile their item only into tests: `#[cfg(test)]`,
/// or `#[cfg(all(test, ...))]`. Unit tests may import what they like.
fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    fn requires_test(meta: &syn::Meta) -> bool {
        match meta {
            syn::Meta::Path(p) => p.is_ident("test"),
            syn::Meta::List(list) if list.path.is_ident("all") => list
                .parse_args_with(Punctuated::<syn::Meta, syn::Token![,]>::parse_terminated)
                .is_ok_and(|all| all.iter().any(requires_test)),
            _ => false,
        }
    }
    attrs.iter().any(|a| {
        a.path().is_ident("cfg") && a.parse_args::<syn::Meta>().is_ok_and(|m| requires_test(&m))
    })
}

/// What a `use` leaf binds in its module.
enum Binding {
    Name(String),
    Glob,
    /// `use x as _;` brings a trait into scope without a name.
    Hidden,
}

/// One path a `use` names, after groups are expanded.
struct UseLeaf {
    path: Vec<String>,
    binding: Binding,
    written: String,
    line: usize,
}

fn use_leaves(tree: &syn::UseTree) -> Vec<UseLeaf> {
    fn walk(tree: &syn::UseTree, prefix: &mut Vec<String>, out: &mut Vec<UseLeaf>) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                walk(&p.tree, prefix, out);
                prefix.pop();
            }
            syn::UseTree::Name(n) => out.push(leaf(prefix, &n.ident, None)),
            syn::UseTree::Rename(r) => out.push(leaf(prefix, &r.ident, Some(&r.rename))),
            syn::UseTree::Glob(g) => out.push(UseLeaf {
                path: prefix.clone(),
                binding: Binding::Glob,
                written: format!("{}::*", prefix.join("::")),
                line: g.star_token.span.start().line,
            }),
            syn::UseTree::Group(g) => {
                for item in &g.items {
                    walk(item, prefix, out);
                }
            }
        }
    }
    fn leaf(prefix: &[String], ident: &syn::Ident, rename: Option<&syn::Ident>) -> UseLeaf {
        let mut path = prefix.to_vec();
        // `use a::b::{self}` names `a::b` itself.
        if ident != "self" {
            path.push(ident.to_string());
        }
        let name = match rename {
            Some(r) => r.to_string(),
            None => path.last().cloned().unwrap_or_default(),
        };
        let binding = if name.is_empty() || name == "_" {
            Binding::Hidden
        } else {
            Binding::Name(name)
        };
        UseLeaf {
            written: path.join("::"),
            path,
            binding,
            line: ident.span().start().line,
        }
    }
    let mut out = Vec::new();
    walk(tree, &mut Vec::new(), &mut out);
    out
}

/// What one module (a file's, or an inline `mod x { ... }` in one) holds, as
/// far as resolving paths through it needs.
#[derive(Default)]
struct Scope {
    /// The file module whose source holds this scope.
    file: ModPath,
    /// Submodules, inline or in files of their own.
    children: BTreeSet<String>,
    /// Items defined here: functions, types, traits, constants, macros.
    defined: BTreeSet<String>,
    /// Names a `use` binds here, each to its path as written here.
    uses: BTreeMap<String, Vec<String>>,
    /// The sources of glob imports, as written here.
    globs: Vec<Vec<String>>,
}

/// Every module of the crate, file or inline, by path.
#[derive(Default)]
struct Tree {
    scopes: BTreeMap<ModPath, Scope>,
}

impl Tree {
    fn scope_mut(&mut self, path: &[String]) -> &mut Scope {
        self.scopes.entry(path.to_vec()).or_insert_with(|| Scope {
            file: path.to_vec(),
            ..Scope::default()
        })
    }

    fn add_file(&mut self, module: &[String], items: &[syn::Item]) {
        // A file is a submodule of its parent whether or not the parent's
        // `mod` line was read, so that the tree does not depend on order.
        for depth in 1..=module.len() {
            let name = module[depth - 1].clone();
            self.scope_mut(&module[..depth - 1]).children.insert(name);
        }
        self.add_items(module, module, items);
    }

    fn add_items(&mut self, path: &[String], file: &[String], items: &[syn::Item]) {
        self.scope_mut(path).file = file.to_vec();
        for item in items {
            if is_test_only(item_attrs(item)) {
                continue;
            }
            let defined = match item {
                syn::Item::Mod(m) => {
                    let name = m.ident.to_string();
                    self.scope_mut(path).children.insert(name.clone());
                    if let Some((_, inner)) = &m.content {
                        let mut child = path.to_vec();
                        child.push(name);
                        self.add_items(&child, file, inner);
                    }
                    None
                }
                syn::Item::Use(u) => {
                    // A leading `::` names an external crate.
                    if u.leading_colon.is_none() {
                        let scope = self.scope_mut(path);
                        for leaf in use_leaves(&u.tree) {
                            match leaf.binding {
                                Binding::Name(name) => {
                                    scope.uses.insert(name, leaf.path);
                                }
                                Binding::Glob => scope.globs.push(leaf.path),
                                Binding::Hidden => {}
                            }
                        }
                    }
                    None
                }
                syn::Item::Fn(i) => Some(&i.sig.ident),
                syn::Item::Struct(i) => Some(&i.ident),
                syn::Item::Enum(i) => Some(&i.ident),
                syn::Item::Union(i) => Some(&i.ident),
                syn::Item::Trait(i) => Some(&i.ident),
                syn::Item::TraitAlias(i) => Some(&i.ident),
                syn::Item::Type(i) => Some(&i.ident),
                syn::Item::Const(i) => Some(&i.ident),
                syn::Item::Static(i) => Some(&i.ident),
                syn::Item::Macro(i) => i.ident.as_ref(),
                syn::Item::ExternCrate(i) => Some(i.rename.as_ref().map_or(&i.ident, |(_, r)| r)),
                _ => None,
            };
            if let Some(ident) = defined {
                self.scope_mut(path).defined.insert(ident.to_string());
            }
        }
    }

    /// Whether `name` means something in module `path`: a submodule, an item,
    /// an import, or a name one of its glob imports brings.
    fn has_name(&self, path: &[String], name: &str, budget: &mut usize) -> bool {
        let Some(scope) = self.scopes.get(path) else {
            return false;
        };
        if scope.children.contains(name)
            || scope.defined.contains(name)
            || scope.uses.contains_key(name)
        {
            return true;
        }
        self.glob_source_of(path, name, budget).is_some()
    }

    /// The module that one of module `path`'s glob imports takes `name` from.
    fn glob_source_of(&self, path: &[String], name: &str, budget: &mut usize) -> Option<ModPath> {
        let scope = self.scopes.get(path)?;
        for glob in &scope.globs {
            if *budget == 0 {
                return None;
            }
            *budget -= 1;
            let Some((from, used)) = self.start(path, glob, budget) else {
                continue;
            };
            let (source, left) = self.walk(from, &glob[used..], budget);
            // A glob over an enum's variants (`use Kind::*`) leaves segments
            // unresolved, and brings no module's names.
            if left.is_empty() && source != path && self.has_name(&source, name, budget) {
                return Some(source);
            }
        }
        None
    }

    /// Where a path written in module `scope` starts: the module it is
    /// relative to and how many of its segments that takes. `None` for a
    /// path into another crate (or to a local name this tree cannot see).
    fn start(
        &self,
        scope: &[String],
        path: &[String],
        budget: &mut usize,
    ) -> Option<(ModPath, usize)> {
        let first = path.first()?;
        match first.as_str() {
            "crate" => Some((Vec::new(), 1)),
            "self" => Some((scope.to_vec(), 1)),
            "super" => {
                let ups = path.iter().take_while(|s| *s == "super").count();
                let depth = scope.len().checked_sub(ups)?;
                Some((scope[..depth].to_vec(), ups))
            }
            name => self
                .has_name(scope, name, budget)
                .then(|| (scope.to_vec(), 0)),
        }
    }

    /// Follows `path` from module `from`: down submodules, through imports
    /// and globs to where a name comes from, until a name is defined where
    /// the walk stands (or cannot be followed). Returns that module and the
    /// segments left.
    fn walk(
        &self,
        mut module: ModPath,
        path: &[String],
        budget: &mut usize,
    ) -> (ModPath, Vec<String>) {
        let mut at = 0;
        while at < path.len() {
            let name = &path[at];
            let Some(scope) = self.scopes.get(&module) else {
                break;
            };
            if scope.children.contains(name) {
                module.push(name.clone());
                at += 1;
                continue;
            }
            if *budget == 0 {
                break;
            }
            *budget -= 1;
            if let Some(source) = scope.uses.get(name) {
                match self.start(&module, source, budget) {
                    Some((from, used)) => {
                        let mut rest = source[used..].to_vec();
                        rest.extend_from_slice(&path[at + 1..]);
                        return self.walk(from, &rest, budget);
                    }
                    // Imported from another crate: the path stops here.
                    None => break,
                }
            }
            if scope.defined.contains(name) {
                break;
            }
            match self.glob_source_of(&module, name, budget) {
                Some(source) => module = source,
                None => break,
            }
        }
        (module, path[at..].to_vec())
    }

    /// The file module that a path written in module `scope` names, or
    /// `None` when it names another crate.
    fn resolve(&self, scope: &[String], path: &[String]) -> Option<ModPath> {
        let mut budget = RESOLUTION_STEPS;
        let (from, used) = self.start(scope, path, &mut budget)?;
        let (mut module, _) = self.walk(from, &path[used..], &mut budget);
        // A `mod x;` whose file is not part of the check (a test-only one)
        // has no scope; its nearest known ancestor stands for it.
        while !module.is_empty() && !self.scopes.contains_key(&module) {
            module.pop();
        }
        self.scopes.get(&module).map(|s| s.file.clone())
    }
}

/// A path written in a module, before it is resolved.
struct Reference {
    scope: ModPath,
    path: Vec<String>,
    written: String,
    line: usize,
}

/// Collects the paths of one file that may refer into the crate.
struct Collector {
    /// The module the visit is in: the file's, then inline ones within it.
    scope: ModPath,
    refs: Vec<Reference>,
}

impl Collector {
    fn note(&mut self, path: Vec<String>, written: String, line: usize) {
        self.refs.push(Reference {
            scope: self.scope.clone(),
            path,
            written,
            line,
        });
    }

    /// Finds `a::b` sequences among tokens that syn leaves unparsed: those of
    /// macro calls, attributes and verbatim syntax.
    fn scan(&mut self, tokens: &TokenStream) {
        let tokens: Vec<TokenTree> = tokens.clone().into_iter().collect();
        let separator_at = |at: usize| {
            matches!(
                (tokens.get(at), tokens.get(at + 1)),
                (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)))
                    if a.as_char() == ':' && a.spacing() == Spacing::Joint && b.as_char() == ':'
            )
        };
        let mut at = 0;
        while at < tokens.len() {
            match &tokens[at] {
                TokenTree::Group(group) => {
                    self.scan(&group.stream());
                    at += 1;
                }
                // The middle of a longer path (`bson::doc` in
                // `mongodb::bson::doc`) is not the start of one.
                TokenTree::Ident(first) if !(at >= 2 && separator_at(at - 2)) => {
                    let mut path = vec![first.to_string()];
                    let mut next = at + 1;
                    while separator_at(next) {
                        let Some(TokenTree::Ident(segment)) = tokens.get(next + 2) else {
                            break;
                        };
                        path.push(segment.to_string());
                        next += 3;
                    }
                    if path.len() > 1 {
                        let written = path.join("::");
                        self.note(path, written, first.span().start().line);
                    }
                    at = next;
                }
                _ => at += 1,
            }
        }
    }
}

impl<'ast> Visit<'ast> for Collector {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        if !is_test_only(item_attrs(item)) {
            visit::visit_item(self, item);
        }
    }

    fn visit_impl_item(&mut self, item: &'ast syn::ImplItem) {
        if !is_test_only(impl_item_attrs(item)) {
            visit::visit_impl_item(self, item);
        }
    }

    fn visit_trait_item(&mut self, item: &'ast syn::TraitItem) {
        if !is_test_only(trait_item_attrs(item)) {
            visit::visit_trait_item(self, item);
        }
    }

    fn visit_field(&mut self, field: &'ast syn::Field) {
        if !is_test_only(&field.attrs) {
            visit::visit_field(self, field);
        }
    }

    fn visit_variant(&mut self, variant: &'ast syn::Variant) {
        if !is_test_only(&variant.attrs) {
            visit::visit_variant(self, variant);
        }
    }

    fn visit_arm(&mut self, arm: &'ast syn::Arm) {
        if !is_test_only(&arm.attrs) {
            visit::visit_arm(self, arm);
        }
    }

    fn visit_local(&mut self, local: &'ast syn::Local) {
        if !is_test_only(&local.attrs) {
            visit::visit_local(self, local);
        }
    }

    fn visit_stmt_macro(&mut self, stmt: &'ast syn::StmtMacro) {
        if !is_test_only(&stmt.attrs) {
            visit::visit_stmt_macro(self, stmt);
        }
    }

    fn visit_item_mod(&mut self, module: &'ast syn::ItemMod) {
        for attr in &module.attrs {
            self.visit_attribute(attr);
        }
        // `mod x;` only declares: it is not an import.
        if let Some((_, items)) = &module.content {
            self.scope.push(module.ident.to_string());
            for item in items {
                self.visit_item(item);
            }
            self.scope.pop();
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        for attr in &item.attrs {
            self.visit_attribute(attr);
        }
        if item.leading_colon.is_none() {
            for leaf in use_leaves(&item.tree) {
                self.note(leaf.path, leaf.written, leaf.line);
            }
        }
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        // A single segment is a name already in scope: the `use` that
        // brought it is the edge. A leading `::` names another crate.
        if path.leading_colon.is_none() && path.segments.len() > 1 {
            let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
            let written = segments.join("::");
            let line = path.segments[0].ident.span().start().line;
            self.note(segments, written, line);
        }
        visit::visit_path(self, path);
    }

    fn visit_token_stream(&mut self, tokens: &'ast TokenStream) {
        self.scan(tokens);
    }
}

/// An import of one file module by another.
struct Edge {
    from: ModPath,
    to: ModPath,
    file: String,
    line: usize,
    written: String,
}

/// The crate as the two rules see it: its file modules (but the root) and
/// the imports among them.
struct Crate {
    /// Each file module, to its file.
    modules: BTreeMap<ModPath, String>,
    /// One edge per importing module, target and path as written, at its
    /// first line; ordered by file and line.
    edges: Vec<Edge>,
}

/// The modules below `path` that `#[cfg(test)] mod x;` (or an inline
/// `#[cfg(test)] mod x { ... }`) compiles only into tests.
fn find_test_only(items: &[syn::Item], path: &[String], out: &mut BTreeSet<ModPath>) {
    for item in items {
        if let syn::Item::Mod(m) = item {
            let mut child = path.to_vec();
            child.push(m.ident.to_string());
            if is_test_only(&m.attrs) {
                out.insert(child);
            } else if let Some((_, inner)) = &m.content {
                find_test_only(inner, &child, out);
            }
        }
    }
}

/// Parses the given file modules and resolves every path they write.
fn analyse(sources: &[SourceModule]) -> Crate {
    let parsed: Vec<(&SourceModule, syn::File)> = sources
        .iter()
        .map(|s| {
            let syntax = syn::parse_file(&s.text).unwrap_or_else(|e| {
                panic!(
                    "{}:{}: syn cannot parse this file: {e}",
                    s.file,
                    e.span().start().line
                )
            });
            (s, syntax)
        })
        .collect();

    // A file declared by `#[cfg(test)] mod x;` holds only tests, like an
    // inline `mod tests`, so it is left out with all below it.
    let mut test_only: BTreeSet<ModPath> = BTreeSet::new();
    for (source, syntax) in &parsed {
        find_test_only(&syntax.items, &source.module, &mut test_only);
    }
    let parsed: Vec<_> = parsed
        .into_iter()
        .filter(|(s, _)| !test_only.iter().any(|t| s.module.starts_with(t)))
        .collect();

    let mut tree = Tree::default();
    for (source, syntax) in &parsed {
        tree.add_file(&source.module, &syntax.items);
    }

    let mut modules = BTreeMap::new();
    let mut edges: BTreeMap<(ModPath, ModPath, String), Edge> = BTreeMap::new();
    for (source, syntax) in &parsed {
        // The crate root only declares modules and re-exports their names;
        // both rules leave it out.
        if source.module.is_empty() {
            continue;
        }
        modules.insert(source.module.clone(), source.file.clone());
        let mut collector = Collector {
            scope: source.module.clone(),
            refs: Vec::new(),
        };
        collector.visit_file(syntax);
        for r in collector.refs {
            let Some(to) = tree.resolve(&r.scope, &r.path) else {
                continue;
            };
            if to.is_empty() || to == source.module {
                continue;
            }
            let key = (source.module.clone(), to.clone(), r.written.clone());
            let edge = edges.entry(key).or_insert_with(|| Edge {
                from: source.module.clone(),
                to,
                file: source.file.clone(),
                line: r.line,
                written: r.written,
            });
            edge.line = edge.line.min(r.line);
        }
    }
    let mut edges: Vec<Edge> = edges.into_values().collect();
    edges.sort_by(|a, b| (&a.file, a.line, &a.written).cmp(&(&b.file, b.line, &b.written)));
    Crate { modules, edges }
}

/// The floor table: each entry with its floor, in table order.
struct Floors {
    entries: Vec<(ModPath, u32)>,
}

impl Floors {
    /// A module's floor and the entry that decides it: the longest entry
    /// that is a prefix of the module's path.
    fn of(&self, module: &[String]) -> Option<(u32, &ModPath)> {
        self.entries
            .iter()
            .filter(|(entry, _)| module.starts_with(entry))
            .max_by_key(|(entry, _)| entry.len())
            .map(|(entry, floor)| (*floor, entry))
    }
}

/// Reads the table of the `## Floors` section of a markdown document.
fn parse_floors(markdown: &str) -> Result<Floors, String> {
    let mut lines = markdown.lines().enumerate();
    if !lines.any(|(_, l)| l.trim() == "## Floors") {
        return Err("no `## Floors` section".to_string());
    }
    let mut rows = Vec::new();
    for (number, line) in lines {
        let line = line.trim();
        if line.starts_with("# ") || line.starts_with("## ") {
            break;
        }
        if line.starts_with('|') {
            rows.push((number + 1, line));
        } else if !rows.is_empty() {
            // The first table of the section is the floor table.
            break;
        }
    }
    let mut floors = Floors {
        entries: Vec::new(),
    };
    let mut seen: BTreeMap<ModPath, u32> = BTreeMap::new();
    // The first row is the header and the second the `|---|` line.
    for (number, row) in rows.into_iter().skip(2) {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        let floor: u32 = cells[0].parse().map_err(|_| {
            format!(
                "line {number}: the first column must be a floor number, not `{}`",
                cells[0]
            )
        })?;
        let modules = cells.get(1).copied().unwrap_or_default();
        let pieces: Vec<&str> = modules.split('`').collect();
        // Between backticked names there may be only commas and spaces, so
        // that a name someone forgot to quote is an error, not ignored.
        let stray = pieces
            .iter()
            .step_by(2)
            .any(|between| between.chars().any(|c| c != ',' && !c.is_whitespace()));
        if pieces.len().is_multiple_of(2) || pieces.len() < 3 || stray {
            return Err(format!(
                "line {number}: the second column must list modules as `a`, `b::c`, not `{modules}`"
            ));
        }
        for name in pieces.iter().skip(1).step_by(2) {
            let name = name.strip_prefix("crate::").unwrap_or(name);
            let path: ModPath = name.split("::").map(str::to_string).collect();
            if path
                .iter()
                .any(|s| s.is_empty() || !s.chars().all(|c| c.is_alphanumeric() || c == '_'))
                || name == "crate"
            {
                return Err(format!(
                    "line {number}: `{name}` is not a module path below the crate root"
                ));
            }
            if let Some(other) = seen.insert(path.clone(), floor) {
                return Err(format!(
                    "line {number}: `{name}` is on floors {other} and {floor}"
                ));
            }
            floors.entries.push((path, floor));
        }
    }
    if floors.entries.is_empty() {
        return Err("the `## Floors` section has no table rows".to_string());
    }
    Ok(floors)
}

/// Modules without a floor, entries that decide none, then every import
/// from a floor above the importer's.
fn floor_problems(krate: &Crate, floors: &Floors) -> Vec<String> {
    let mut problems = Vec::new();
    let mut deciding = BTreeSet::new();
    for (module, file) in &krate.modules {
        match floors.of(module) {
            Some((_, entry)) => {
                deciding.insert(entry.clone());
            }
            None => problems.push(format!(
                "{file} ({}) has no floor: no entry is it or a module above it",
                show(module)
            )),
        }
    }
    for (entry, floor) in &floors.entries {
        if !deciding.contains(entry) {
            problems.push(format!(
                "`{}` (floor {floor}) is the floor of no module: it names none, or longer entries decide all it covers",
                show(entry)
            ));
        }
    }
    for edge in &krate.edges {
        let (Some((from, _)), Some((to, _))) = (floors.of(&edge.from), floors.of(&edge.to)) else {
            continue;
        };
        if to > from {
            problems.push(format!(
                "{}:{} imports {}: floor {to} ({}) from floor {from} ({})",
                edge.file,
                edge.line,
                edge.written,
                show(&edge.to),
                show(&edge.from)
            ));
        }
    }
    problems
}

/// A cycle of imports: the modules in order, the first repeated at the end,
/// and for each step the import that makes it.
struct Cycle {
    modules: Vec<ModPath>,
    steps: Vec<String>,
}

impl Cycle {
    fn chain(&self) -> String {
        self.modules
            .iter()
            .map(|m| show(m))
            .collect::<Vec<_>>()
            .join(" -> ")
    }
}

/// For every import that lies on a cycle, the shortest cycle through it;
/// each cycle once, shortest first.
fn cycles(krate: &Crate) -> Vec<Cycle> {
    let mut next: BTreeMap<&ModPath, BTreeSet<&ModPath>> = BTreeMap::new();
    let mut witness: BTreeMap<(&ModPath, &ModPath), &Edge> = BTreeMap::new();
    for edge in &krate.edges {
        next.entry(&edge.from).or_default().insert(&edge.to);
        witness.entry((&edge.from, &edge.to)).or_insert(edge);
    }
    let mut found: BTreeSet<Vec<ModPath>> = BTreeSet::new();
    for (&from, tos) in &next {
        for &to in tos {
            // Breadth first from `to` back to `from` gives the shortest way
            // round through this edge.
            let mut came_from: BTreeMap<&ModPath, &ModPath> = BTreeMap::new();
            let mut queue = VecDeque::from([to]);
            while let Some(at) = queue.pop_front() {
                if at == from {
                    break;
                }
                for &n in next.get(at).into_iter().flatten() {
                    if n != to && !came_from.contains_key(n) {
                        came_from.insert(n, at);
                        queue.push_back(n);
                    }
                }
            }
            if to != from && !came_from.contains_key(from) {
                continue;
            }
            let mut ring = vec![from.clone()];
            let mut at = from;
            while at != to {
                at = came_from[at];
                ring.push(at.clone());
            }
            ring.reverse();
            // The same cycle is found from each of its edges: start it at
            // its least module so that it is kept once.
            let least = (0..ring.len()).min_by_key(|&i| &ring[i]).unwrap_or(0);
            ring.rotate_left(least);
            found.insert(ring);
        }
    }
    let mut rings: Vec<Vec<ModPath>> = found.into_iter().collect();
    rings.sort_by_key(|r| r.len());
    rings
        .into_iter()
        .map(|mut modules| {
            modules.push(modules[0].clone());
            let steps = modules
                .windows(2)
                .map(|pair| {
                    let edge = witness[&(&pair[0], &pair[1])];
                    format!("{}:{} {}", edge.file, edge.line, edge.written)
                })
                .collect();
            Cycle { modules, steps }
        })
        .collect()
}

/// The groups of modules that cycles tie together (the strongly connected
/// components of the import graph): cycles that share a module merge.
fn tangles(cycles: &[Cycle]) -> Vec<BTreeSet<ModPath>> {
    let mut groups: Vec<BTreeSet<ModPath>> = Vec::new();
    for cycle in cycles {
        let mut group: BTreeSet<ModPath> = cycle.modules.iter().cloned().collect();
        groups.retain(|other| {
            if other.is_disjoint(&group) {
                true
            } else {
                group.extend(other.iter().cloned());
                false
            }
        });
        groups.push(group);
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.len()));
    groups
}

fn floors_file(root: &Path) -> PathBuf {
    std::env::var_os("TIDY_FLOORS_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("ARCHITECTURE.md"))
}

/// The crate's own modules, with a check that the walk found them.
fn this_crate() -> Crate {
    let krate = analyse(&crate_modules(Path::new(env!("CARGO_MANIFEST_DIR"))));
    assert!(
        krate.modules.len() > 20 && krate.edges.len() > 50,
        "found only {} modules and {} imports; is the walk broken?",
        krate.modules.len(),
        krate.edges.len()
    );
    krate
}

#[test]
fn no_module_imports_from_a_floor_above_its_own() {
    let krate = this_crate();
    let path = floors_file(Path::new(env!("CARGO_MANIFEST_DIR")));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let floors = parse_floors(&text).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the floor table: see tests/tidy.rs)",
            path.display()
        )
    });
    let problems = floor_problems(&krate, &floors);
    assert!(
        problems.is_empty(),
        "{} problems with the floors of {}:\n{}",
        problems.len(),
        path.display(),
        problems.join("\n")
    );
}

#[test]
fn module_dependencies_have_no_cycles() {
    let cycles = cycles(&this_crate());
    let tangles: Vec<String> = tangles(&cycles)
        .iter()
        .map(|t| {
            let names: Vec<String> = t.iter().map(|m| show(m)).collect();
            format!("{} modules: {}", t.len(), names.join(", "))
        })
        .collect();
    let shown: Vec<String> = cycles
        .iter()
        .map(|c| format!("{}\n    {}", c.chain(), c.steps.join("\n    ")))
        .collect();
    assert!(
        cycles.is_empty(),
        "{} import cycles among file modules, tying together\n{}\n\
         the shortest cycle through each import on one, with the import that \
         makes each step:\n{}",
        cycles.len(),
        tangles.join("\n"),
        shown.join("\n")
    );
}

// ---------------------------------------------------------------------------
// The checker on small made-up crates, through the same functions.
// ---------------------------------------------------------------------------

/// A made-up crate from (module path, source) pairs; `crate` is the root. A
/// module with submodules is shown as `src/a/mod.rs`, others as `src/a.rs`.
fn fixture(files: &[(&str, &str)]) -> Crate {
    let paths: Vec<ModPath> = files
        .iter()
        .map(|(module, _)| match *module {
            "crate" => Vec::new(),
            m => m.split("::").map(str::to_string).collect(),
        })
        .collect();
    let sources: Vec<SourceModule> = files
        .iter()
        .zip(&paths)
        .map(|((_, text), module)| {
            let has_children = paths
                .iter()
                .any(|p| p.len() > module.len() && p.starts_with(module));
            let file = if module.is_empty() {
                "src/lib.rs".to_string()
            } else if has_children {
                format!("src/{}/mod.rs", module.join("/"))
            } else {
                format!("src/{}.rs", module.join("/"))
            };
            SourceModule {
                module: module.clone(),
                file,
                text: text.to_string(),
            }
        })
        .collect();
    analyse(&sources)
}

/// A floor table in the shape ARCHITECTURE.md holds, amid other sections.
const FIXTURE_TABLE: &str = "\
# Architecture

## Floors

| floor | modules | what lives here |
|---|---|---|
| 0 | `words`, `upper::report` | plain data, with a | in the prose |
| 1 | `lower` | the middle |
| 2 | `upper` | the top |

## Invariants

| 9 | `not_a_floor` | a later table |
";

fn problems(files: &[(&str, &str)]) -> Vec<String> {
    let floors = parse_floors(FIXTURE_TABLE).expect("the fixture table parses");
    floor_problems(&fixture(files), &floors)
}

fn chains(files: &[(&str, &str)]) -> Vec<String> {
    cycles(&fixture(files)).iter().map(Cycle::chain).collect()
}

#[test]
fn fixture_table_is_read_with_longest_prefix_floors() {
    let floors = parse_floors(FIXTURE_TABLE).expect("the fixture table parses");
    let path = |s: &str| -> ModPath { s.split("::").map(str::to_string).collect() };
    assert_eq!(
        floors.entries.len(),
        4,
        "the table after the section is not read"
    );
    assert_eq!(floors.of(&path("upper::report")).map(|f| f.0), Some(0));
    assert_eq!(
        floors.of(&path("upper::report::deep")).map(|f| f.0),
        Some(0)
    );
    assert_eq!(floors.of(&path("upper::other")).map(|f| f.0), Some(2));
    assert_eq!(floors.of(&path("upper_case")).map(|f| f.0), None);
    assert!(parse_floors("# Architecture\n").is_err());
    let unquoted = "## Floors\n\n| floor | modules |\n|---|---|\n| 0 | `a`, b |\n";
    assert!(
        parse_floors(unquoted).is_err(),
        "an unquoted name is an error"
    );
    let twice = "## Floors\n\n| floor | modules |\n|---|---|\n| 0 | `a` |\n| 1 | `a` |\n";
    assert!(
        parse_floors(twice).is_err(),
        "a module on two floors is an error"
    );
}

#[test]
fn fixture_downward_imports_pass() {
    let found = problems(&[
        ("crate", "pub mod words; pub mod lower; pub mod upper;"),
        ("words", "pub struct Word;"),
        ("lower", "use crate::words::Word;\npub fn f(_: Word) {}"),
        (
            "upper",
            "pub mod report;\nuse crate::lower;\npub fn g() { lower::f(crate::words::Word) }",
        ),
        (
            "upper::report",
            "use crate::words::{self, Word as W};\npub struct R(W);",
        ),
    ]);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn fixture_upward_imports_are_all_named() {
    let found = problems(&[
        ("words", "pub fn w() -> crate::lower::Thing { todo!() }"),
        (
            "lower",
            "use crate::upper::{Top, other::{Deep}};\n\
             pub struct Thing;\n\
             impl From<Top> for Thing { fn from(_: Top) -> Self { Thing } }",
        ),
        ("upper", "pub mod other;\npub mod report;\npub struct Top;"),
        ("upper::other", "pub struct Deep;"),
        ("upper::report", "pub struct Report;"),
    ]);
    assert_eq!(
        found,
        [
            "src/lower.rs:1 imports crate::upper::Top: floor 2 (upper) from floor 1 (lower)",
            "src/lower.rs:1 imports crate::upper::other::Deep: floor 2 (upper::other) from floor 1 (lower)",
            "src/words.rs:1 imports crate::lower::Thing: floor 1 (lower) from floor 0 (words)",
        ]
    );
}

#[test]
fn fixture_reexports_are_followed_to_the_defining_module() {
    let found = problems(&[
        (
            "crate",
            "pub mod words; pub mod lower; pub mod upper;\npub use upper::Summary as Sum;",
        ),
        ("words", "pub use crate::upper::Summary;"),
        (
            "lower",
            "use crate::upper::Summary;\n\
             use crate::Sum as Again;\n\
             pub fn f(_: crate::upper::Glob, _: crate::upper::Top) {}",
        ),
        (
            "upper",
            "pub mod report;\n\
             pub use report::Summary;\n\
             pub use self::report::glob::*;\n\
             pub struct Top;",
        ),
        ("upper::report", "pub mod glob;\npub struct Summary;"),
        ("upper::report::glob", "pub struct Glob;"),
    ]);
    // `Summary` and `Glob` come from floor 0 through the re-exports of
    // `upper` (floor 2) and of the crate root; only `Top` is defined there.
    // `words` re-exports `upper::Summary`, which is floor 0 as well.
    assert_eq!(
        found,
        ["src/lower.rs:3 imports crate::upper::Top: floor 2 (upper) from floor 1 (lower)"]
    );
}

#[test]
fn fixture_a_childs_super_follows_its_parents_private_imports() {
    let krate = fixture(&[
        ("upper", "pub mod report;\nuse crate::lower::Thing;"),
        ("upper::report", "pub fn r(_: super::Thing) {}"),
        ("lower", "pub struct Thing;"),
    ]);
    let edges: Vec<String> = krate
        .edges
        .iter()
        .map(|e| format!("{} -> {} ({})", show(&e.from), show(&e.to), e.written))
        .collect();
    assert_eq!(
        edges,
        [
            "upper -> lower (crate::lower::Thing)",
            "upper::report -> lower (super::Thing)",
        ]
    );
}

#[test]
fn fixture_paths_in_macros_and_attributes_are_seen() {
    let found = problems(&[
        (
            "lower",
            "pub fn f() {\n\
             \x20   tracing::info!(top = ?crate::upper::top(), \"done\");\n\
             \x20   let _ = format!(\"{}\", super::upper::Named::NAME);\n\
             }\n\
             #[derive(Debug, thiserror::Error)]\n\
             pub enum E {\n\
             \x20   #[error(\"{}\", crate::upper::describe(report))]\n\
             \x20   Blocked { report: u8 },\n\
             }",
        ),
        ("upper", "pub mod report;\npub fn top() {}"),
        ("upper::report", ""),
        ("words", ""),
    ]);
    assert_eq!(
        found,
        [
            "src/lower.rs:2 imports crate::upper::top: floor 2 (upper) from floor 1 (lower)",
            "src/lower.rs:3 imports super::upper::Named::NAME: floor 2 (upper) from floor 1 (lower)",
            "src/lower.rs:7 imports crate::upper::describe: floor 2 (upper) from floor 1 (lower)",
        ]
    );
}

#[test]
fn fixture_test_only_code_is_ignored() {
    let found = problems(&[
        ("crate", "pub mod lower;"),
        (
            "lower",
            "#[cfg(test)]\n\
             mod tests {\n\
             \x20   use super::*;\n\
             \x20   use crate::upper::Top;\n\
             }\n\
             #[cfg(test)]\n\
             mod testing;\n\
             #[cfg(all(test, unix))]\n\
             fn helper() -> crate::upper::Top { todo!() }\n\
             pub struct S {\n\
             \x20   #[cfg(test)]\n\
             \x20   probe: crate::upper::Top,\n\
             }\n\
             impl S {\n\
             \x20   #[cfg(test)]\n\
             \x20   fn probe() { tracing::info!(\"{}\", crate::upper::NAME) }\n\
             }",
        ),
        // A test-only file needs no floor, and may import from above.
        ("lower::testing", "use crate::upper::Top;"),
        ("upper", "pub mod report;\npub struct Top;"),
        ("upper::report", ""),
        ("words", ""),
    ]);
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn fixture_super_and_self_in_inline_modules_are_relative_to_them() {
    let krate = fixture(&[
        (
            "lower",
            "pub struct Thing;\n\
             mod inner {\n\
             \x20   use super::Thing;\n\
             \x20   mod deeper {\n\
             \x20       pub fn f(_: super::super::super::upper::Top, _: self::G) {}\n\
             \x20       pub struct G;\n\
             \x20   }\n\
             }",
        ),
        ("upper", "pub struct Top;"),
    ]);
    let edges: Vec<String> = krate
        .edges
        .iter()
        .map(|e| format!("{}:{} {} -> {}", e.file, e.line, e.written, show(&e.to)))
        .collect();
    // `super::Thing` and `self::G` stay inside `lower`, so they are not edges.
    assert_eq!(
        edges,
        ["src/lower.rs:5 super::super::super::upper::Top -> upper"]
    );
}

#[test]
fn fixture_two_and_three_cycles_are_found() {
    let found = chains(&[
        ("a", "use crate::b::B;\npub struct A;"),
        ("b", "pub struct B(crate::a::A);"),
        ("c", "pub fn c() { crate::d::d() }"),
        ("d", "pub fn d() { crate::e::e() }"),
        (
            "e",
            "pub fn e() { tracing::debug!(\"{:?}\", crate::c::c()) }",
        ),
        ("f", "use crate::a::A;\nuse crate::c;"),
    ]);
    assert_eq!(found, ["a -> b -> a", "c -> d -> e -> c"]);
    let krate = fixture(&[
        ("a", "use crate::b::B;\npub struct A;"),
        ("b", "pub struct B(crate::a::A);"),
        ("c", "pub fn c() { crate::d::d() }"),
        ("d", "pub fn d() { crate::e::e() }"),
        (
            "e",
            "pub fn e() { tracing::debug!(\"{:?}\", crate::c::c()) }",
        ),
    ]);
    let groups: Vec<Vec<String>> = tangles(&cycles(&krate))
        .iter()
        .map(|t| t.iter().map(|m| show(m)).collect())
        .collect();
    assert_eq!(groups, [vec!["c", "d", "e"], vec!["a", "b"]]);
}

#[test]
fn fixture_mod_declarations_and_children_are_not_cycles_by_themselves() {
    // A parent declaring its child is no import; a child importing from its
    // parent while the parent imports from the child is a cycle.
    let clean = chains(&[
        ("p", "pub mod kid;\npub struct Shared;"),
        ("p::kid", "use super::Shared;"),
    ]);
    assert!(clean.is_empty(), "{clean:#?}");
    let looped = chains(&[
        (
            "p",
            "pub mod kid;\npub struct Shared;\npub fn run() { kid::go() }",
        ),
        ("p::kid", "use super::Shared;\npub fn go() {}"),
    ]);
    assert_eq!(looped, ["p -> p::kid -> p"]);
}

#[test]
fn fixture_unassigned_modules_and_stale_entries_are_reported() {
    let found = problems(&[
        ("words", ""),
        ("lower", ""),
        ("upper", "pub mod other;"),
        ("upper::other", ""),
        ("extra", "pub mod inner;"),
        ("extra::inner", ""),
    ]);
    assert_eq!(
        found,
        [
            "src/extra/mod.rs (extra) has no floor: no entry is it or a module above it",
            "src/extra/inner.rs (extra::inner) has no floor: no entry is it or a module above it",
            "`upper::report` (floor 0) is the floor of no module: it names none, or longer entries decide all it covers",
        ]
    );
}
