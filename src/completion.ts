/**
 * `kmm-worker completion bash|zsh`: a completion script made from the command tree itself, so it never lags
 * behind the commands and flags. commander has no completion of its own; this completes subcommands and
 * flags, and falls back to file names (configs, references to oci: layouts) for everything else. zsh runs the
 * bash function through bashcompinit.
 */
import type { CommandUnknownOpts as Command } from '@commander-js/extra-typings';

function flagsOf(cmd: Command): string[] {
  return cmd.options.flatMap((o) => [o.short, o.long].filter((f): f is string => Boolean(f)));
}

/** command path ("" for the top, "image pull") → the words that may follow it */
export function completionTable(program: Command): Map<string, string[]> {
  const table = new Map<string, string[]>();
  const globals = flagsOf(program);
  const walk = (cmd: Command, path: string) => {
    const subs = cmd.commands.map((c) => c.name());
    const own = cmd === program ? [] : flagsOf(cmd);
    table.set(path, [...subs, ...own, ...globals, '--help']);
    for (const c of cmd.commands) walk(c, path ? `${path} ${c.name()}` : c.name());
  };
  walk(program, '');
  return table;
}

export function completionScript(program: Command, shell: 'bash' | 'zsh'): string {
  const table = completionTable(program);
  const cases = [...table].map(([path, words]) => `    '${path}') words='${words.join(' ')}' ;;`).join('\n');
  const bash = `# kmm-worker ${shell} completion: source it, or install it as the completion file of kmm-worker
_kmm_worker() {
  local cur=\${COMP_WORDS[COMP_CWORD]} path='' w i words
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=\${COMP_WORDS[i]}
    case "$w" in -*) continue ;; esac
    case " $(_kmm_worker_subs "$path") " in *" $w "*) path=\${path:+$path }$w ;; esac
  done
  case "$path" in
${cases}
    *) words='' ;;
  esac
  # a word that is not a flag is a subcommand, or else an argument: nothing offered, so the shell completes file names
  case "$cur" in -*) ;; *) words=$(_kmm_worker_subs "$path") ;; esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
_kmm_worker_subs() {
  case "$1" in
${[...table].map(([path, words]) => `    '${path}') echo '${words.filter((w) => !w.startsWith('-')).join(' ')}' ;;`).join('\n')}
  esac
}
complete -o default -F _kmm_worker kmm-worker
`;
  return shell === 'zsh' ? `autoload -U +X bashcompinit && bashcompinit\n${bash}` : bash;
}
