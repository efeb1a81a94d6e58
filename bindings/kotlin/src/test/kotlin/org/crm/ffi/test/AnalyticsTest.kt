package org.crm.ffi.test

import org.crm.ffi.CrmException
import org.crm.ffi.CrmHandle
import org.crm.ffi.ErpFactsProvider
import org.crm.ffi.FfiErpFacts
import org.crm.ffi.FfiListRequest
import org.crm.ffi.FfiMoney
import org.crm.ffi.FfiOverdueInvoice
import org.crm.ffi.FfiRecord
import org.crm.ffi.FfiValue
import org.crm.ffi.Session
import org.junit.jupiter.api.AfterAll
import org.junit.jupiter.api.Assertions.assertEquals
import org.junit.jupiter.api.Assertions.assertNotNull
import org.junit.jupiter.api.Assertions.assertNull
import org.junit.jupiter.api.Assertions.assertTrue
import org.junit.jupiter.api.MethodOrderer
import org.junit.jupiter.api.Order
import org.junit.jupiter.api.Test
import org.junit.jupiter.api.TestInstance
import org.junit.jupiter.api.TestMethodOrder
import org.junit.jupiter.api.assertThrows
import java.math.BigDecimal

private fun t(s: String) = FfiValue.Text(s)
private fun eur(amount: String) = FfiValue.Money(amount, "EUR")
private const val DAY = 86_400_000_000L

/** The ERP of the host, in Kotlin: what accounting knows about each customer. */
private class KotlinErp(private val known: Map<String, FfiErpFacts>) : ErpFactsProvider {
    val asked = mutableListOf<String>()
    override fun facts(accountId: String): FfiErpFacts {
        asked += accountId
        return known[accountId] ?: throw CrmException.NotFound("not in the ERP", null, "erp", null, "account")
    }
}

/** An ERP that is down. */
private class BrokenErp : ErpFactsProvider {
    override fun facts(accountId: String): FfiErpFacts = throw IllegalStateException("ERP connection refused")
}

/**
 * Analytics through the binding: a small shop (products with costs, customers with phone numbers,
 * orders with catalogue lines), a dynamic segment, the caller-id screen pop with an ERP implemented
 * in Kotlin, RFM, profit by segment × product, cross-sell, forecast, KPIs and merging duplicates.
 */
@TestInstance(TestInstance.Lifecycle.PER_CLASS)
@TestMethodOrder(MethodOrderer.OrderAnnotation::class)
class AnalyticsTest {
    private val handle = CrmHandle.openInMemory("IT")
    private val admin: Session = handle.bootstrap("shop", "admin")
    private val now = handle.now()

    private fun product(sku: String, name: String, price: String, cost: String?): FfiRecord {
        val f = mutableMapOf<String, FfiValue>("sku" to t(sku), "name" to t(name), "list_price" to eur(price))
        cost?.let { f["unit_cost"] = eur(it) }
        return admin.create("product", f)
    }

    private val boiler = product("B-1", "Boiler", "1000.00", "600.00")
    private val filter = product("F-1", "Filter", "50.00", "20.00")
    private val valve = product("V-1", "Valve", "10.00", null) // no cost known

    private fun account(name: String, country: String, phone: String?): FfiRecord {
        val f = mutableMapOf<String, FfiValue>("name" to t(name), "country" to t(country))
        phone?.let { f["phone"] = t(it) }
        return admin.create("account", f)
    }

    private val rossi = account("Rossi Srl", "IT", "02 1234 5678") // stored as +390212345678
    private val bianchi = account("Bianchi SpA", "IT", "06 5555 1234")
    private val muller = account("Müller GmbH", "DE", "+49 30 1234567")
    private val verdi = account("Verdi Snc", "IT", null)
    private val rossiContact = admin.create("contact", mapOf(
        "first_name" to t("Mario"), "last_name" to t("Rossi"), "account_id" to FfiValue.Ref(rossi.id),
    ))

    /** One order; each line is (product, quantity) at the product's list price. */
    private fun order(acc: FfiRecord, daysAgo: Int, vararg lines: Pair<FfiRecord, String>): FfiRecord {
        val json = lines.joinToString(",", "[", "]") { (p, qty) ->
            val price = (p.fields["list_price"] as FfiValue.Money).amount
            """{"product_id":"${p.id}","description":"${(p.fields["name"] as FfiValue.Text).value}","quantity":"$qty","unit_price":"$price"}"""
        }
        return admin.create("order", mapOf(
            "account_id" to FfiValue.Ref(acc.id), "currency" to t("EUR"),
            "ordered_at" to FfiValue.Timestamp(now - daysAgo * DAY), "lines" to FfiValue.Lines(json),
        ))
    }

    init {
        order(rossi, 40, boiler to "1", filter to "2")
        order(rossi, 5, filter to "4")
        order(bianchi, 200, boiler to "2")
        order(bianchi, 90, boiler to "1", filter to "1", valve to "3")
        order(bianchi, 10, valve to "10")
        order(muller, 3, boiler to "1", filter to "1")
        order(muller, 1, filter to "1")
        order(verdi, 300, valve to "1")
    }

    private val segment = admin.create("segment", mapOf(
        "name" to t("Italian repeat customers"), "entity" to t("account"), "kind" to t("dynamic"),
        "definition" to t("""country = "IT" and order_count > 1"""),
    ))

    @AfterAll
    fun close() = handle.close()

    @Test
    @Order(1)
    fun `a dynamic segment counts, refreshes and reports who entered and left`() {
        assertEquals(2L, admin.segmentCount(segment.id))
        val first = admin.refreshSegment(segment.id)
        assertEquals(setOf(rossi.id, bianchi.id), first.entered.toSet())
        assertTrue(first.left.isEmpty())
        assertEquals(2L, first.memberCount)
        val members = admin.segmentMembers(segment.id, FfiListRequest(sort = "name"))
        assertEquals(listOf("Bianchi SpA", "Rossi Srl"), members.items.map { (it.fields["name"] as FfiValue.Text).value })

        // Verdi's second order brings it in; Bianchi moving abroad takes it out.
        order(verdi, 2, filter to "1")
        val b = admin.get("account", bianchi.id)
        admin.update("account", b.id, b.version, mapOf("country" to t("FR")))
        val second = admin.refreshSegment(segment.id)
        assertEquals(listOf(verdi.id), second.entered)
        assertEquals(listOf(bianchi.id), second.left)
        assertEquals(2L, second.memberCount)
        assertEquals(2L, admin.segmentCount(segment.id))
        val b2 = admin.get("account", bianchi.id)
        admin.update("account", b2.id, b2.version, mapOf("country" to t("IT")))
    }

    @Test
    fun `the funnel follows opportunities through the stages and the value indices read orders and surveys`() {
        admin.create("pipeline", mapOf(
            "name" to t("kt"),
            "stages" to FfiValue.Json(
                """[{"name": "open"}, {"name": "won", "probability": 100, "outcome": "won"},
                   {"name": "lost", "probability": 0, "outcome": "lost"}]""",
            ),
        ))
        val a = admin.create("opportunity", mapOf("name" to t("A"), "account_id" to FfiValue.Ref(rossi.id), "pipeline" to t("kt")))
        admin.moveOpportunity(a.id, a.version, "won")
        val b = admin.create("opportunity", mapOf("name" to t("B"), "account_id" to FfiValue.Ref(rossi.id), "pipeline" to t("kt")))
        admin.moveOpportunity(b.id, b.version, "lost", lostReason = "price")
        val f = admin.funnel("kt")
        assertEquals(listOf("open", "won"), f.stages.map { it.stage })
        assertEquals(listOf(2L, 1L), f.stages.map { it.reached })
        assertEquals(0.5, f.stages[0].conversionToNext)
        assertEquals(0.5, f.winRate)
        assertThrows<CrmException.Validation> { admin.funnel("nope") }

        admin.create("activity", mapOf(
            "activity_type" to t("survey"), "survey_type" to t("csat"), "score" to FfiValue.Int(5),
            "account_id" to FfiValue.Ref(rossi.id),
        ))
        val v = admin.customerValues().single { it.accountId == rossi.id }
        assertTrue(v.orders > 0)
        assertNotNull(v.lifetimeValue)
        assertNotNull(v.predictedValue)
        assertEquals(100.0, v.csat)
        assertEquals(1L, v.surveyResponses)
    }

    @Test
    fun `a segment definition is checked when it is saved`() {
        val bad = assertThrows<CrmException.InvalidQuery> {
            admin.create("segment", mapOf(
                "name" to t("bad"), "entity" to t("account"), "definition" to t("""colour = "red""""),
            ))
        }
        assertEquals("definition.colour", bad.field)
    }

    @Test
    @Order(2)
    fun `the screen pop finds the caller in another format and brings the ERP facts from Kotlin`() {
        val erp = KotlinErp(mapOf(rossi.id to FfiErpFacts(
            balance = FfiMoney("1250.40", "EUR"),
            creditTerms = "60 days end of month",
            overdueInvoices = listOf(FfiOverdueInvoice("2026/0042", FfiMoney("300.00", "EUR"), "2026-01-31")),
        )))
        val pop = admin.screenPop("+39 02 12345678", erp)
        assertEquals(rossi.id, pop.account?.id)
        assertEquals(listOf(rossi.id), pop.candidates.map { it.id })
        assertNull(pop.contact)
        assertEquals(listOf(rossiContact.id), pop.contacts.map { it.id })
        assertEquals(2, pop.recentOrders.size)
        val newest = pop.recentOrders.first().fields["ordered_at"] as FfiValue.Timestamp
        assertEquals(now - 5 * DAY, newest.epochMicros) // newest first
        assertTrue(pop.recentOrders.all { it.fields["lines"] is FfiValue.Lines })
        assertNotNull(pop.rfmSegment)
        assertEquals("active", pop.lifecycle)
        assertEquals(listOf(rossi.id), erp.asked)
        val facts = pop.erp!!
        assertEquals(0, BigDecimal("1250.40").compareTo(BigDecimal(facts.balance!!.amount)))
        assertEquals("EUR", facts.balance!!.currency)
        assertEquals("60 days end of month", facts.creditTerms)
        assertEquals(1, facts.overdueInvoices.size)
        assertEquals("2026/0042", facts.overdueInvoices[0].number)
        assertEquals("2026-01-31", facts.overdueInvoices[0].due)
        assertEquals(0, BigDecimal("300").compareTo(BigDecimal(facts.overdueInvoices[0].amount.amount)))

        // Without a provider there are no ERP facts; an unknown number matches nobody.
        assertNull(admin.screenPop("02 1234 5678").erp)
        val nobody = admin.screenPop("+39 011 999 8888")
        assertTrue(nobody.candidates.isEmpty())
        assertNull(nobody.account)
    }

    @Test
    @Order(3)
    fun `an ERP provider that throws fails the screen pop with a CrmException`() {
        val e = assertThrows<CrmException.Internal> { admin.screenPop("06 5555 1234", BrokenErp()) }
        assertEquals("callback", e.rule)
        // A CrmException thrown by the provider comes back as itself.
        val nf = assertThrows<CrmException.NotFound> { admin.screenPop("06 5555 1234", KotlinErp(emptyMap())) }
        assertEquals("erp", nf.rule)
        // An invalid amount from the ERP is the ERP's validation error, not a crash.
        val badErp = object : ErpFactsProvider {
            override fun facts(accountId: String) = FfiErpFacts(balance = FfiMoney("12,50", "EUR"))
        }
        assertEquals("balance", assertThrows<CrmException.Validation> { admin.screenPop("06 5555 1234", badErp) }.field)
        // The handle still works afterwards.
        assertEquals(bianchi.id, admin.screenPop("06 5555 1234").account?.id)
    }

    @Test
    @Order(4)
    fun `RFM scores every customer with orders from 1 to 5`() {
        val rows = admin.rfm()
        assertEquals(setOf(rossi.id, bianchi.id, muller.id, verdi.id), rows.map { it.accountId }.toSet())
        for (r in rows) {
            for (score in listOf(r.r, r.f, r.m)) assertTrue(score in 1..5, r.toString())
            assertTrue(r.segment.isNotEmpty())
            assertEquals("EUR", r.monetary.currency)
        }
        val bianchiRow = rows.single { it.accountId == bianchi.id }
        assertEquals(3L, bianchiRow.frequency)
        assertEquals(0, BigDecimal("3180").compareTo(BigDecimal(bianchiRow.monetary.amount))) // 2000 + 1080 + 100
        // Only the last 30 days: Verdi (2 days ago), Rossi, Bianchi (10 days) and Müller.
        val recent = admin.rfm(windowDays = 30)
        assertEquals(1L, recent.single { it.accountId == bianchi.id }.frequency)
        assertEquals(4, admin.lifecycles().size)
        assertThrows<CrmException.Validation> { admin.rfm(windowDays = -1) }
    }

    @Test
    @Order(5)
    fun `profit by segment and product in exact decimals`() {
        val rows = admin.profit(now - 400 * DAY, now + DAY, "field:country")
        val itBoiler = rows.single { it.segment == "IT" && it.productId == boiler.id }
        // Rossi 1 + Bianchi 2 + 1 boilers at 1000.00, cost 600.00 each.
        assertEquals(0, BigDecimal("4").compareTo(BigDecimal(itBoiler.quantity)))
        assertEquals(0, BigDecimal("4000.00").compareTo(BigDecimal(itBoiler.revenue.amount)))
        assertEquals(0, BigDecimal("2400.00").compareTo(BigDecimal(itBoiler.cost.amount)))
        assertEquals(0, BigDecimal("1600.00").compareTo(BigDecimal(itBoiler.margin.amount)))
        assertEquals("EUR", itBoiler.margin.currency)
        assertEquals(0L, itBoiler.linesWithoutCost)
        val itValve = rows.single { it.segment == "IT" && it.productId == valve.id }
        assertTrue(itValve.linesWithoutCost > 0)
        assertEquals(0, BigDecimal.ZERO.compareTo(BigDecimal(itValve.cost.amount)))
        val deFilter = rows.single { it.segment == "DE" && it.productId == filter.id }
        assertEquals(0, BigDecimal("100.00").compareTo(BigDecimal(deFilter.revenue.amount)))
        assertEquals(0, BigDecimal("60.00").compareTo(BigDecimal(deFilter.margin.amount)))
        // Largest margin first.
        val margins = rows.map { BigDecimal(it.margin.amount) }
        assertEquals(margins.sortedDescending(), margins)

        assertTrue(admin.profit(now - 400 * DAY, now + DAY, "rfm").isNotEmpty())
        assertTrue(admin.profit(now - 400 * DAY, now + DAY, "lifecycle").isNotEmpty())
        assertEquals("by", assertThrows<CrmException.Validation> { admin.profit(0, now, "region") }.field)
        // Nothing ordered in the window: no rows.
        assertTrue(admin.profit(now - 1000 * DAY, now - 900 * DAY, "lifecycle").isEmpty())
    }

    @Test
    @Order(6)
    fun `cross-sell, forecast and KPIs`() {
        val owned = setOf(boiler.id, filter.id)
        val suggestions = admin.crossSell(rossi.id)
        assertTrue(suggestions.none { it.productId in owned }, suggestions.toString())
        assertTrue(suggestions.all { it.becauseOf in owned && it.lift > 0.0 })

        admin.create("opportunity", mapOf(
            "name" to t("Rossi boilers"), "account_id" to FfiValue.Ref(rossi.id),
            "amount" to eur("10000.00"), "probability" to FfiValue.Decimal("25"),
            "expected_close" to FfiValue.Date("2027-03-15"),
        ))
        val row = admin.forecast().single { it.month == "2027-03" }
        assertEquals(1L, row.count)
        assertEquals(0, BigDecimal("2500").compareTo(BigDecimal(row.weighted.amount)))

        val kpi = admin.kpis(now - 400 * DAY, now + DAY).single { it.userId == admin.userId() }
        assertEquals(9L, kpi.orders)
        assertNotNull(kpi.orderRevenue)
        assertNull(kpi.teamId)

        // Per team: the admin joins a team, whose row then carries the admin's figures.
        val team = admin.create("team", mapOf("name" to t("Inside sales")))
        val me = admin.get("user", admin.userId())
        admin.update("user", me.id, me.version, mapOf("team_ids" to FfiValue.TextList(listOf(team.id))))
        val teamRow = admin.teamKpis(now - 400 * DAY, now + DAY).single()
        assertEquals(team.id, teamRow.teamId)
        assertNull(teamRow.userId)
        assertEquals(1L, teamRow.users)
        assertEquals(kpi.orders, teamRow.orders)
        assertEquals(kpi.activities, teamRow.activities)
    }

    @Test
    @Order(7)
    fun `merging a duplicate account moves its contact to the survivor`() {
        val dup = admin.create("account", mapOf(
            "name" to t("Rossi S.r.l."), "country" to t("IT"), "city" to t("Milano"),
        ))
        val contact = admin.create("contact", mapOf(
            "first_name" to t("Anna"), "last_name" to t("Rossi"), "account_id" to FfiValue.Ref(dup.id),
        ))
        val keep = admin.get("account", rossi.id)
        val out = admin.merge("account", keep.id, keep.version, dup.id)
        assertEquals(rossi.id, out.kept.id)
        assertEquals(t("Milano"), out.kept.fields["city"]) // the gap filled from the duplicate
        assertTrue(out.kept.version > keep.version)
        assertTrue(out.moved.any { it.kind == "contact" && it.id == contact.id }, out.moved.toString())
        assertEquals(FfiValue.Ref(rossi.id), admin.get("contact", contact.id).fields["account_id"])
        assertNotNull(admin.get("account", dup.id).deletedAt) // in the trash
        // A stale version is a conflict; an order cannot be merged.
        val again = account("Rossi dup 2", "IT", null)
        assertThrows<CrmException.Conflict> { admin.merge("account", rossi.id, keep.version, again.id) }
        assertThrows<CrmException.Validation> { admin.merge("order", rossi.id, out.kept.version, again.id) }
    }
}
