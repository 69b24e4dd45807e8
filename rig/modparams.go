package rig

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ErrModParam: a module parameter is malformed, names a module the rig
// does not load, or names a parameter its module does not have.
var ErrModParam = errors.New("bad module parameter")

// ParseModParams parses module parameters as TXTIMEOUT_MODPARAMS and the
// -modparam flag give them: "MODULE.PARAM=VALUE" items separated by
// spaces or commas, e.g. "e1000e.IntMode=1 e1000e.copybreak=0". A comma
// not followed by MODULE.PARAM= belongs to the value, so array parameters
// keep their form ("e1000e.IntMode=1,1"); empty pieces between commas
// are dropped, so an array element cannot be empty. It returns the items checked
// and normalised as Config.ModParams holds them: '-' in the module and
// parameter names becomes '_', as the kernel compares them, and of two
// items for one parameter the later wins.
func ParseModParams(s string) ([]string, error) {
	return normalizeModParams(splitModParams(s))
}

// modParam is one parsed "module.param=value" item.
type modParam struct {
	module, param, value string
}

func (p modParam) String() string { return p.module + "." + p.param + "=" + p.value }

// splitModParams splits s at spaces and at the commas that begin a new
// MODULE.PARAM= item; it checks nothing else.
func splitModParams(s string) []string {
	var out []string
	for _, f := range strings.Fields(s) {
		for i, piece := range strings.Split(f, ",") {
			switch {
			case piece == "":
				// A trailing or doubled comma separates nothing.
			case i > 0 && len(out) > 0 && !startsModParam(piece):
				out[len(out)-1] += "," + piece
			default:
				out = append(out, piece)
			}
		}
	}
	return out
}

// startsModParam reports whether s begins with a well-formed MODULE.PARAM=.
func startsModParam(s string) bool {
	k, _, ok := strings.Cut(s, "=")
	if !ok {
		return false
	}
	m, p, ok := strings.Cut(k, ".")
	return ok && validModName(m) && validModName(p)
}

// parseModParam parses one "module.param=value" item. The value is passed
// to the kernel as it is, so it must be one token of its command-line
// syntax (kernel/params.c next_arg): no spaces, no quotes (which the kernel
// would interpret), no control characters. An empty value and a bare
// boolean ("module.param") are refused rather than guessed at.
func parseModParam(s string) (modParam, error) {
	k, v, ok := strings.Cut(s, "=")
	m, p, dot := strings.Cut(k, ".")
	if !ok || !dot || m == "" || p == "" {
		return modParam{}, fmt.Errorf("%w %q: want MODULE.PARAM=VALUE", ErrModParam, s)
	}
	if !validModName(m) {
		return modParam{}, fmt.Errorf("%w %q: module name %q: want letters, digits, '_' or '-'", ErrModParam, s, m)
	}
	if !validModName(p) {
		return modParam{}, fmt.Errorf("%w %q: parameter name %q: want letters, digits, '_' or '-'", ErrModParam, s, p)
	}
	if v == "" {
		return modParam{}, fmt.Errorf("%w %q: empty value (give one, e.g. %s.%s=1)", ErrModParam, s, m, p)
	}
	for _, c := range v {
		if c <= ' ' || c > '~' || c == '"' || c == '\'' {
			return modParam{}, fmt.Errorf("%w %q: value %q: spaces, quotes, control and non-ASCII characters are not supported", ErrModParam, s, v)
		}
	}
	return modParam{module: modName(m), param: strings.ReplaceAll(p, "-", "_"), value: v}, nil
}

func validModName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// normalizeModParams checks every item and returns them normalised, the
// later of two items for one parameter replacing the earlier in place.
func normalizeModParams(items []string) ([]string, error) {
	var out []modParam
	for _, s := range items {
		p, err := parseModParam(s)
		if err != nil {
			return nil, err
		}
		if i := slices.IndexFunc(out, func(q modParam) bool { return q.module == p.module && q.param == p.param }); i >= 0 {
			out[i] = p
			continue
		}
		out = append(out, p)
	}
	if out == nil {
		return nil, nil
	}
	s := make([]string, len(out))
	for i, p := range out {
		s[i] = p.String()
	}
	return s, nil
}

// moduleParams checks normalised items against the modules the rig loads
// and returns each module's parameter string for finit_module ("a=1 b=2").
// A parameter for a module the rig does not load, a built-in one, or one
// the module does not declare (its .modinfo parmtype= lines) is an error:
// the kernel would ignore it with a warning, and a typo would silently
// change nothing.
func moduleParams(items []string, mods []kmod, ix *moduleIndex) (map[string]string, error) {
	out := map[string]string{}
	for _, s := range items {
		p, err := parseModParam(s)
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(mods, func(m kmod) bool { return m.Name == p.module })
		if i < 0 {
			names := make([]string, len(mods))
			for i, m := range mods {
				names[i] = m.Name
			}
			if ix != nil && ix.builtin[p.module] {
				return nil, fmt.Errorf("%w %s: %s is built into kernel %s, and the rig passes parameters only to the modules it loads (%s)", ErrModParam, s, p.module, ix.release, strings.Join(names, ", "))
			}
			return nil, fmt.Errorf("%w %s: the rig does not load module %s (it loads %s; the NIC model selects the driver)", ErrModParam, s, p.module, strings.Join(names, ", "))
		}
		if m := mods[i]; !slices.Contains(m.params, p.param) {
			return nil, fmt.Errorf("%w %s: module %s has no parameter %s (it has %s)", ErrModParam, s, m.Name, p.param, orNone(strings.Join(m.params, ", ")))
		}
		if out[p.module] != "" {
			out[p.module] += " "
		}
		out[p.module] += p.param + "=" + p.value
	}
	return out, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// paramsOf returns the parameter names a module declares: its .modinfo
// parmtype= lines ("IntMode:array of int"), which module_param writes for
// every parameter, and its parm= lines (MODULE_PARM_DESC), in order.
func paramsOf(info map[string][]string) []string {
	var out []string
	for _, key := range []string{"parmtype", "parm"} {
		for _, line := range info[key] {
			name, _, _ := strings.Cut(line, ":")
			if name = strings.TrimSpace(name); name != "" && !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	return out
}
