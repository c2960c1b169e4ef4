package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// commands are the subcommands, in the order of the usage text.
var commands = []string{"serve", "get", "put", "patch", "delete", "topics", "watch", "bench", "version", "completion", "help"}

// topicCommands take topic names as arguments: the scripts complete them
// with `statesync topics -o name`, from the server in STATESYNC_SERVER
// with STATESYNC_TOKEN.
var topicCommands = []string{"get", "put", "patch", "delete", "watch"}

// fileFlags take a file or directory name.
var fileFlags = []string{"--data", "--tokens", "--tls-cert", "--tls-key", "--metrics-token-file", "--access-log", "--cache"}

// runCompletion prints the shell completion script for bash or zsh.
func (m *Main) runCompletion(ctx context.Context, args []string) error {
	fs := m.newFlagSet("completion", "bash|zsh\n\nPrints a completion script for the shell:\n\n\tsource <(statesync completion bash)    # in ~/.bashrc\n\tsource <(statesync completion zsh)     # in ~/.zshrc, after compinit")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "bash" && pos[0] != "zsh" {
		fs.Usage()
		return errUsage
	}
	flags := map[string][]string{}
	for _, cmd := range commands {
		flags[cmd] = m.flagsOf(ctx, cmd)
	}
	var b strings.Builder
	if pos[0] == "bash" {
		writeBashCompletion(&b, flags)
	} else {
		writeZshCompletion(&b, flags)
	}
	_, err = fmt.Fprint(m.Stdout, b.String())
	return err
}

// flagLine matches a flag in the text of flag.PrintDefaults.
var flagLine = regexp.MustCompile(`(?m)^  -([A-Za-z0-9][A-Za-z0-9-]*)`)

// flagsOf returns the flags of subcommand cmd, read from its own -h, so
// that the scripts never miss one: --name, or -x for a one-letter flag.
func (m *Main) flagsOf(ctx context.Context, cmd string) []string {
	if cmd == "help" || cmd == "completion" {
		return nil
	}
	var help bytes.Buffer
	sub := &Main{Stdin: strings.NewReader(""), Stdout: &help, Stderr: &help, Getenv: func(string) string { return "" }}
	_ = sub.Run(ctx, []string{cmd, "-h"})
	var out []string
	for _, f := range flagLine.FindAllStringSubmatch(help.String(), -1) {
		name := "--" + f[1]
		if len(f[1]) == 1 {
			name = "-" + f[1]
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out
}

func writeBashCompletion(b *strings.Builder, flags map[string][]string) {
	fmt.Fprintf(b, `# bash completion for statesync: source <(statesync completion bash)
_statesync() {
  local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd=${COMP_WORDS[1]} flags=""
  if (( COMP_CWORD == 1 )); then
    COMPREPLY=($(compgen -W %q -- "$cur"))
    return
  fi
  case $prev in
    -o) COMPREPLY=($(compgen -W %q -- "$cur")); return ;;
    --log-level) COMPREPLY=($(compgen -W "debug info warn error" -- "$cur")); return ;;
    --log-format) COMPREPLY=($(compgen -W "text json" -- "$cur")); return ;;
    %s) COMPREPLY=($(compgen -f -- "$cur")); return ;;
  esac
  case $cmd in
`, strings.Join(commands, " "), strings.Join(outputFormats, " "), strings.Join(fileFlags, "|"))
	for _, cmd := range commands {
		if len(flags[cmd]) > 0 {
			fmt.Fprintf(b, "    %s) flags=%q ;;\n", cmd, strings.Join(flags[cmd], " "))
		}
	}
	fmt.Fprintf(b, `  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$flags" -- "$cur"))
    return
  fi
  case $cmd in
    %s) COMPREPLY=($(compgen -W "$(statesync topics -o name 2>/dev/null)" -- "$cur")) ;;
    completion) COMPREPLY=($(compgen -W "bash zsh" -- "$cur")) ;;
  esac
}
complete -F _statesync statesync
`, strings.Join(topicCommands, "|"))
}

func writeZshCompletion(b *strings.Builder, flags map[string][]string) {
	fmt.Fprintf(b, `#compdef statesync
# zsh completion for statesync: source <(statesync completion zsh), after compinit
_statesync() {
  local -a flags
  if (( CURRENT == 2 )); then
    compadd -- %s
    return
  fi
  case ${words[CURRENT-1]} in
    -o) compadd -- %s; return ;;
    --log-level) compadd -- debug info warn error; return ;;
    --log-format) compadd -- text json; return ;;
    %s) _files; return ;;
  esac
  case ${words[2]} in
`, strings.Join(commands, " "), strings.Join(outputFormats, " "), strings.Join(fileFlags, "|"))
	for _, cmd := range commands {
		if len(flags[cmd]) > 0 {
			fmt.Fprintf(b, "    %s) flags=(%s) ;;\n", cmd, strings.Join(flags[cmd], " "))
		}
	}
	fmt.Fprintf(b, `  esac
  if [[ $PREFIX == -* ]]; then
    compadd -- $flags
    return
  fi
  case ${words[2]} in
    %s) compadd -- ${(f)"$(statesync topics -o name 2>/dev/null)"} ;;
    completion) compadd -- bash zsh ;;
  esac
}
compdef _statesync statesync
`, strings.Join(topicCommands, "|"))
}
