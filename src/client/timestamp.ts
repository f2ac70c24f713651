import type { Timestamp } from '../../protocol/messages.ts'

const pad = (n: number, width = 2): string => String(n).padStart(width, '0')

/** §2 timestamp of `date` in local time: `"YYYY/MM/DD-HH:MM:SS"`. */
export function formatTimestamp (date: Date = new Date()): Timestamp {
  return `${pad(date.getFullYear(), 4)}/${pad(date.getMonth() + 1)}/${pad(date.getDate())}-` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`
}
