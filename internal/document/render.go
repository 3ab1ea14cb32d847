package document

import (
	"errors"
	"fmt"
)

// Step is a concrete step for the agent: parameters substituted, inputs in
// the canonical form of their action. It travels to the agent in a message,
// so it is plain data with JSON tags; after a JSON round trip the typed
// accessors (Shell, RunDocument, Download) still work.
type Step struct {
	// Action is the plugin, e.g. "aws:runShellScript".
	Action string `json:"action"`
	// Name is the step name (the PluginName of the results).
	Name string `json:"name"`
	// ID is the schema 1.2 property id, if any.
	ID string `json:"id,omitempty"`
	// Inputs are the substituted inputs. aws:runShellScript: runCommand
	// (list of strings, flattened), workingDirectory (string),
	// timeoutSeconds (effective, integer). aws:runDocument: documentType,
	// documentPath, documentParameters (map). aws:downloadContent:
	// sourceType, sourceInfo (map), destinationPath. Nil when Skipped.
	Inputs map[string]any `json:"inputs,omitempty"`
	// Env is extra environment for the step: SSM_<name> for each
	// interpolationType ENV_VAR parameter, on aws:runShellScript steps.
	Env map[string]string `json:"env,omitempty"`
	// Skipped is set when the step does not apply to the platform (schema
	// 2.2: precondition false or plugin unsupported). The agent reports it
	// as Skipped without running it.
	Skipped     bool   `json:"skipped,omitempty"`
	OnFailure   string `json:"onFailure,omitempty"`
	OnSuccess   string `json:"onSuccess,omitempty"`
	FinallyStep bool   `json:"finallyStep,omitempty"`
}

// Shell returns the inputs of an aws:runShellScript step.
func (s Step) Shell() (ShellInputs, error) {
	if s.Action != ActionRunShellScript {
		return ShellInputs{}, fmt.Errorf("step %q is %s, not %s", s.Name, s.Action, ActionRunShellScript)
	}
	return shellInputs(s.Inputs)
}

// RunDocument returns the inputs of an aws:runDocument step.
func (s Step) RunDocument() (RunDocumentInputs, error) {
	if s.Action != ActionRunDocument {
		return RunDocumentInputs{}, fmt.Errorf("step %q is %s, not %s", s.Name, s.Action, ActionRunDocument)
	}
	return runDocumentInputs(s.Inputs)
}

// Download returns the inputs of an aws:downloadContent step.
func (s Step) Download() (DownloadInputs, error) {
	if s.Action != ActionDownloadContent {
		return DownloadInputs{}, fmt.Errorf("step %q is %s, not %s", s.Name, s.Action, ActionDownloadContent)
	}
	return downloadInputs(s.Inputs)
}

// Render substitutes params (from Resolve) into doc's steps for an instance
// of platformType (Linux, MacOS or Windows) and returns the steps to run, in
// order. A step that does not apply (see MainStep.AppliesTo) is returned
// with Skipped set under schema 2.2; under 1.2 and 2.0 it is an error
// matching ErrIncompatiblePlatform. Input errors after substitution (a
// sourceInfo string that is not JSON, say) are *DocumentError values; a
// missing or mistyped parameter value is a *ParamError.
func Render(doc *Document, params map[string]Value, platformType string) ([]Step, error) {
	if doc == nil {
		return nil, errors.New("render: nil document")
	}
	if err := checkResolved(doc, params); err != nil {
		return nil, err
	}
	envVar := map[string]bool{}
	env := map[string]string{}
	for name, p := range doc.Parameters {
		if p.InterpolationType == InterpolationEnvVar {
			envVar[name] = true
			env[EnvVarName(name)] = params[name].Text
		}
	}
	in := &interpolator{vals: params, envVar: envVar}
	out := make([]Step, 0, len(doc.MainSteps))
	for i, ms := range doc.MainSteps {
		path := fmt.Sprintf("mainSteps[%d]", i)
		st := Step{Action: ms.Action, Name: ms.Name, ID: ms.ID, OnFailure: ms.OnFailure, OnSuccess: ms.OnSuccess, FinallyStep: ms.FinallyStep}
		ok, err := ms.AppliesTo(platformType, params)
		if err != nil {
			return nil, err
		}
		if !ok {
			if doc.SchemaVersion != Schema22 {
				return nil, fmt.Errorf("%w: step %q (%s) cannot run on %s under schema %s", ErrIncompatiblePlatform, ms.Name, ms.Action, platformType, doc.SchemaVersion)
			}
			st.Skipped = true
			out = append(out, st)
			continue
		}
		spec, ok := actions[ms.Action]
		if !ok { // Parse rejects these; a hand-built Document may not.
			return nil, docErr(path+".action", "step %q: unknown action %q", ms.Name, truncate(ms.Action, 64))
		}
		inputs, err := in.stepInputs(ms)
		if err != nil {
			return nil, docErr(path+".inputs", "step %q (%s): %v", ms.Name, ms.Action, err)
		}
		if st.Inputs, err = spec.normalize(inputs); err != nil {
			return nil, docErr(path+".inputs", "step %q (%s): %v", ms.Name, ms.Action, err)
		}
		if ms.Action == ActionRunShellScript && len(env) > 0 {
			st.Env = make(map[string]string, len(env))
			for k, v := range env {
				st.Env[k] = v
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// stepInputs interpolates a step's inputs; runCommand of shell steps is
// shell context (ENV_VAR parameters become references).
func (in *interpolator) stepInputs(ms *MainStep) (map[string]any, error) {
	out := make(map[string]any, len(ms.Inputs))
	for k, v := range ms.Inputs {
		shell := ms.Action == ActionRunShellScript && k == "runCommand"
		r, err := in.value(v, 1, shell)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", k, err)
		}
		out[k] = r
	}
	return out, nil
}

// checkResolved makes sure params holds a well-typed value for every
// declared parameter (as Resolve returns) and nothing else.
func checkResolved(doc *Document, params map[string]Value) error {
	for _, name := range sortedKeys(params) {
		if _, ok := doc.Parameters[name]; !ok {
			return paramErr(name, "unknown parameter (the document does not declare it)")
		}
	}
	for _, name := range doc.ParameterNames() {
		v, ok := params[name]
		if !ok {
			return paramErr(name, "has no value (call Resolve first)")
		}
		if v.Type != doc.Parameters[name].Type {
			return paramErr(name, "must be a %s, got a %s", doc.Parameters[name].Type, v.Type)
		}
	}
	return nil
}

// ExecutionTimeout returns the document's execution timeout in seconds,
// which the server adds to the delivery timeout to compute when a command
// expires (reference 1.4). It is the sum of the steps' timeouts, since
// steps run one after the other: an aws:runShellScript step counts its
// effective timeoutSeconds after substitution (5..172800, else 3600; so
// AWS-RunShellScript gives its executionTimeout), aws:runDocument and
// aws:downloadContent count the default 3600, fleetops:noop counts 0. The
// platform is not known here, so steps that might be skipped count too.
// params should come from Resolve; a step whose inputs do not interpolate
// counts the default.
func ExecutionTimeout(doc *Document, params map[string]Value) int {
	if doc == nil {
		return DefaultTimeoutSeconds
	}
	total := 0
	for _, ms := range doc.MainSteps {
		spec, ok := actions[ms.Action]
		if !ok {
			total += DefaultTimeoutSeconds
			continue
		}
		var ts any
		if v, ok := ms.Inputs["timeoutSeconds"]; ok {
			var err error
			if ts, err = (&interpolator{vals: params}).value(v, 1, false); err != nil {
				total += DefaultTimeoutSeconds
				continue
			}
		}
		total += spec.timeout(map[string]any{"timeoutSeconds": ts})
	}
	return total
}
