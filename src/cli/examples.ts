/** The "Examples:" section of a command's help (`.addHelpText('after', examples([...]))`), as git and hf print them. */
export function examples(lines: string[]): string {
  return `\nExamples:\n${lines.map((line) => `  ${line}`).join('\n')}\n`;
}
